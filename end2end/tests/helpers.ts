import {
  test as base,
  expect,
  type APIRequestContext,
  type Browser,
  type BrowserContext,
  type Page,
  type WebSocketRoute,
} from "@playwright/test";

/** Content-Security-Policy violations reported by any page of the test. */
const violations: string[] = [];

/** Records the page's CSP violations (a broken policy would break hydration
 *  or the socket; the test fails if any page reports one). */
export function watch(page: Page): Page {
  page.on("console", (message) => {
    const text = message.text();
    if (/Content Security Policy|Refused to (execute|load|connect|apply)/i.test(text)) violations.push(text);
  });
  return page;
}

/** Playwright's `test`, failing any test whose pages violated the CSP. */
export const test = base.extend<{ cspGuard: void }>({
  cspGuard: [
    async ({}, use) => {
      violations.length = 0;
      await use();
      expect(violations, "Content-Security-Policy violations").toEqual([]);
    },
    { auto: true },
  ],
  page: async ({ page }, use) => {
    await use(watch(page));
  },
});
export { expect };

export const PASSWORD = "correct horse battery";
let accounts = 0;

/** A fresh email address for `name`. */
export function emailFor(name: string): string {
  const slug = name.toLowerCase().replace(/[^a-z0-9]+/g, "") || "user";
  return `${slug}-${Date.now()}-${accounts++}-${Math.floor(Math.random() * 1e6)}@example.test`;
}

export type User = { id: string; name: string; email: string; color: string };

/** Signs up over the API; the session cookie lands in `request`'s cookie
 *  jar (a context's `request` shares its pages' cookies). */
export async function signUp(request: APIRequestContext, name: string, base = ""): Promise<User> {
  const response = await request.post(`${base}/api/auth/sign-up`, {
    data: { email: emailFor(name), name, password: PASSWORD },
  });
  expect(response.status(), await response.text()).toBe(200);
  return response.json();
}

/** A new browser context signed up as `name`, with a page. */
export async function newUser(browser: Browser, name: string): Promise<{ context: BrowserContext; page: Page; user: User }> {
  const context = await browser.newContext();
  const user = await signUp(context.request, name);
  const page = watch(await context.newPage());
  return { context, page, user };
}

/** Gives `email` a role on document `id` (as the owner `request`). */
export async function share(request: APIRequestContext, id: string, email: string, role: "editor" | "viewer" = "editor") {
  const response = await request.post(`/api/documents/${id}/members`, { data: { email, role } });
  expect(response.status(), await response.text()).toBe(200);
}

/** Creates a document over the HTTP API; returns its id. */
export async function newDocument(request: APIRequestContext, text: string, title = "Test document"): Promise<string> {
  const response = await request.post("/api/documents", { data: { title, text } });
  expect(response.status(), await response.text()).toBe(201);
  return (await response.json()).id;
}

/** The document's text and revision, as the server has them. */
export async function serverText(request: APIRequestContext, id: string): Promise<{ text: string; revision: number }> {
  const response = await request.get(`/api/documents/${id}`);
  expect(response.ok()).toBeTruthy();
  return response.json();
}

/** Opens the editor and waits until connected. */
export async function openEditor(page: Page, id: string) {
  await page.goto(`/d/${id}`);
  await expect(page.getByTestId("connection")).toHaveText("Connected");
}

/** Puts the caret at a character offset (the text here is ASCII). */
export async function caretAt(page: Page, offset: number) {
  const editor = page.getByTestId("editor");
  await editor.focus();
  await editor.evaluate((el: HTMLTextAreaElement, at: number) => el.setSelectionRange(at, at), offset);
}

/** Types at the end of line `line` (0-based). */
export async function typeAtEndOfLine(page: Page, line: number, text: string) {
  const editor = page.getByTestId("editor");
  await editor.focus();
  // Measured and set in one task of the page, so no remote change comes between.
  await editor.evaluate((el: HTMLTextAreaElement, line: number) => {
    const offset = el.value.split("\n").slice(0, line + 1).join("\n").length;
    el.setSelectionRange(offset, offset);
  }, line);
  await page.keyboard.type(text);
}

/** Routes the page's WebSockets (those opened from now on) through a valve
 *  that can hold what the server sends, as a slow network would, or drop
 *  what the page sends. */
export async function withValve(page: Page) {
  const valve = {
    holding: false,
    muted: false,
    held: [] as (string | Buffer)[],
    route: null as WebSocketRoute | null,
  };
  await page.routeWebSocket(/\/ws(\/d\/[a-z0-9]+)?$/, (ws) => {
    const server = ws.connectToServer();
    valve.route = ws;
    ws.onMessage((message) => {
      if (!valve.muted) server.send(message);
    });
    server.onMessage((message) => {
      if (valve.holding) valve.held.push(message);
      else ws.send(message);
    });
  });
  return {
    hold() {
      valve.holding = true;
    },
    /** From now on nothing the page sends reaches the server. */
    mute() {
      valve.muted = true;
    },
    release() {
      valve.holding = false;
      for (const message of valve.held.splice(0)) valve.route!.send(message);
    },
  };
}
