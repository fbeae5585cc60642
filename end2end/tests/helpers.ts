import { expect, type APIRequestContext, type Page, type WebSocketRoute } from "@playwright/test";

/** Creates a document over the HTTP API; returns its id. */
export async function newDocument(request: APIRequestContext, text: string, title = "Test document"): Promise<string> {
  const response = await request.post("/api/documents", { data: { title, text } });
  expect(response.status()).toBe(201);
  return (await response.json()).id;
}

/** The document's text and revision, as the server has them. */
export async function serverText(request: APIRequestContext, id: string): Promise<{ text: string; revision: number }> {
  const response = await request.get(`/api/documents/${id}`);
  expect(response.ok()).toBeTruthy();
  return response.json();
}

/** Opens the editor, sets the display name, waits until connected. */
export async function openEditor(page: Page, id: string, name?: string) {
  await page.goto(`/d/${id}`);
  await expect(page.getByTestId("connection")).toHaveText("Connected");
  if (name) {
    await page.getByTestId("name").fill(name);
    await page.getByTestId("name").press("Enter");
    await page.getByTestId("name").blur();
  }
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

/** Routes the page's WebSocket through a valve that can hold what the
 *  server sends, as a slow network would. */
export async function withValve(page: Page) {
  const valve = { holding: false, held: [] as (string | Buffer)[], route: null as WebSocketRoute | null };
  await page.routeWebSocket(/\/ws(\/d\/[a-z0-9]+)?$/, (ws) => {
    const server = ws.connectToServer();
    valve.route = ws;
    ws.onMessage((message) => server.send(message));
    server.onMessage((message) => {
      if (valve.holding) valve.held.push(message);
      else ws.send(message);
    });
  });
  return {
    hold() {
      valve.holding = true;
    },
    release() {
      valve.holding = false;
      for (const message of valve.held.splice(0)) valve.route!.send(message);
    },
  };
}
