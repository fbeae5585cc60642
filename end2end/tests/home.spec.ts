import { test, expect } from "@playwright/test";

test("the home page is server-rendered, then hydrated", async ({ page, request }) => {
  const response = await request.get("/");
  expect(response.status()).toBe(200);
  const html = await response.text();
  expect(html).toContain("New document");
  expect(html).not.toMatch(/data-testid="hydrated"[^>]*>\s*hydrated\s*</);

  await page.goto("/");
  await expect(page.getByTestId("hydrated")).toHaveText("hydrated");
});

test("create, rename and delete a document from the home page", async ({ page }) => {
  await page.goto("/");
  await expect(page.getByTestId("hydrated")).toHaveText("hydrated");
  const title = `Plan ${Date.now()}`;
  await page.getByPlaceholder("Title of a new document").fill(title);
  await page.getByTestId("create").click();
  await expect(page).toHaveURL(/\/d\/[a-z0-9]+$/);
  await expect(page.getByTestId("title")).toHaveText(title);
  await expect(page.getByTestId("connection")).toHaveText("Connected");

  await page.goto("/");
  const item = page.getByTestId("document").filter({ hasText: title });
  await expect(item).toHaveCount(1);
  await item.locator("details").evaluate((d: HTMLDetailsElement) => (d.open = true));
  await item.locator("input[name=title]").fill(`${title} (renamed)`);
  await item.getByRole("button", { name: "Rename" }).click();
  const renamed = page.getByTestId("document").filter({ hasText: `${title} (renamed)` });
  await expect(renamed).toHaveCount(1);

  page.once("dialog", (dialog) => dialog.accept());
  await renamed.locator("details").evaluate((d: HTMLDetailsElement) => (d.open = true));
  await renamed.getByRole("button", { name: "Delete" }).click();
  await expect(page.getByTestId("document").filter({ hasText: title })).toHaveCount(0);
});

test("health check answers ok", async ({ request }) => {
  const response = await request.get("/healthz");
  expect(response.status()).toBe(200);
  expect(await response.text()).toBe("ok");
});
