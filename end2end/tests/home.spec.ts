import { emailFor, expect, PASSWORD, test } from "./helpers";

test("the home page is server-rendered, then hydrated", async ({ page, request }) => {
  const response = await request.get("/");
  expect(response.status()).toBe(200);
  const html = await response.text();
  expect(html).toContain("Write together, live");
  expect(html).not.toMatch(/data-testid="hydrated"[^>]*>\s*hydrated\s*</);

  await page.goto("/");
  await expect(page.getByTestId("hydrated")).toHaveText("hydrated");
});

test("sign up, sign out, a wrong password, sign in", async ({ page }) => {
  const email = emailFor("Dana");
  await page.goto("/");
  await page.getByTestId("welcome-sign-up").click();
  await page.getByTestId("email").fill(email);
  await page.getByTestId("name").fill("Dana");
  await page.getByTestId("password").fill(PASSWORD);
  await page.getByTestId("sign-up").click();
  await expect(page).toHaveURL(/\/$/);
  await expect(page.getByTestId("me")).toHaveText("Dana");
  await expect(page.getByTestId("no-documents")).toBeVisible();
  // The session cookie is out of scripts' reach.
  expect(await page.evaluate(() => document.cookie)).not.toContain("collab_session");

  await page.getByTestId("sign-out").click();
  await expect(page.getByTestId("welcome")).toBeVisible();
  await expect(page.getByTestId("me")).toHaveCount(0);

  await page.goto("/sign-in");
  await page.getByTestId("email").fill(email);
  await page.getByTestId("password").fill("not the password");
  await page.getByTestId("sign-in").click();
  await expect(page.getByTestId("auth-error")).toContainText("do not match");
  await page.getByTestId("email").fill(email);
  await page.getByTestId("password").fill(PASSWORD);
  await page.getByTestId("sign-in").click();
  await expect(page.getByTestId("me")).toHaveText("Dana");
});

test("create, rename and delete a document from the home page", async ({ page }) => {
  await page.goto("/sign-up");
  await page.getByTestId("email").fill(emailFor("Eve"));
  await page.getByTestId("name").fill("Eve");
  await page.getByTestId("password").fill(PASSWORD);
  await page.getByTestId("sign-up").click();
  await expect(page.getByTestId("me")).toHaveText("Eve");

  const title = `Plan ${Date.now()}`;
  await page.getByPlaceholder("Title of a new document").fill(title);
  await page.getByTestId("create").click();
  await expect(page).toHaveURL(/\/d\/[a-z0-9]+$/);
  await expect(page.getByTestId("title")).toHaveText(title);
  await expect(page.getByTestId("connection")).toHaveText("Connected");

  await page.goto("/");
  const item = page.getByTestId("document").filter({ hasText: title });
  await expect(item).toHaveCount(1);
  await expect(item.getByTestId("role")).toHaveText("owner");
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

test("a signed-out visitor is asked to sign in", async ({ page, request }) => {
  await page.goto("/d/whatever12345");
  await expect(page.getByTestId("sign-in-to-open")).toBeVisible();
  expect((await request.get("/api/documents")).status()).toBe(401);
});

test("health check answers ok", async ({ request }) => {
  const response = await request.get("/healthz");
  expect(response.status()).toBe(200);
  expect(await response.text()).toBe("ok");
});
