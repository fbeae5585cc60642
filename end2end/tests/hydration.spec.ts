import { test, expect } from "@playwright/test";

test("home page is server-rendered before any JavaScript runs", async ({ request }) => {
  const response = await request.get("/");
  expect(response.status()).toBe(200);
  const html = await response.text();
  expect(html).toMatch(/<textarea[^>]*data-testid="draft"/);
  expect(html).toContain('data-testid="draft-count"');
  expect(html).toContain("0 characters");
  // Effects do not run on the server, so SSR HTML never claims hydration.
  expect(html).not.toMatch(/data-testid="hydrated"[^>]*>\s*hydrated\s*</);
});

test("home page hydrates and the draft counter is live", async ({ page }) => {
  await page.goto("/");

  await expect(page.getByTestId("hydrated")).toHaveText("hydrated");

  const draft = page.getByTestId("draft");
  const count = page.getByTestId("draft-count");
  await expect(count).toHaveText("0 characters");

  await draft.click();
  await draft.pressSequentially("hello");
  await expect(draft).toHaveValue("hello");
  await expect(count).toHaveText("5 characters");
  // The delta was computed in the browser by the shared crate (WebAssembly).
  await expect(page.getByTestId("draft-delta")).toHaveText('[4,"o"]');
});

test("health check answers ok", async ({ request }) => {
  const response = await request.get("/healthz");
  expect(response.status()).toBe(200);
  expect(await response.text()).toBe("ok");
});
