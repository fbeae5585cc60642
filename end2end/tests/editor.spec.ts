import {
  caretAt,
  expect,
  newDocument,
  newUser,
  openEditor,
  serverText,
  share,
  signUp,
  test,
  typeAtEndOfLine,
  withValve,
} from "./helpers";

test("the editor page is server-rendered with the document's text", async ({ request }) => {
  await signUp(request, "Owner");
  const text = "\nstarts with a newline\n<b>not bold</b> & </textarea><script>window.pwned = 1</script>\n";
  const id = await newDocument(request, text);
  const html = await (await request.get(`/d/${id}`)).text();
  expect(html).toContain("starts with a newline");
  // Document text can never end the text area or open a tag.
  expect(html).toContain("&lt;b&gt;not bold&lt;/b&gt; &amp; &lt;/textarea&gt;&lt;script&gt;");
  expect(html).not.toContain("<script>window.pwned");
});

test("typing propagates live between three browsers", async ({ browser }) => {
  const users = await Promise.all(["Ana", "Ben", "Cy"].map((name) => newUser(browser, name)));
  const request = users[0].context.request;
  const id = await newDocument(request, "one\ntwo\nthree\n");
  for (const other of users.slice(1)) await share(request, id, other.user.email);
  const contexts = users.map((u) => u.context);
  const [a, b, c] = users.map((u) => u.page);
  await openEditor(a, id);
  await openEditor(b, id);
  await openEditor(c, id);
  // Everyone sees who is here, by account name.
  for (const page of [a, b, c]) await expect(page.getByTestId("peer")).toHaveText(["Ana", "Ben", "Cy"]);

  await typeAtEndOfLine(a, 0, " (Ana)");
  await typeAtEndOfLine(b, 1, " (Ben)");
  await typeAtEndOfLine(c, 2, " (Cy)");
  const expected = "one (Ana)\ntwo (Ben)\nthree (Cy)\n";
  for (const page of [a, b, c]) {
    await expect(page.getByTestId("editor")).toHaveValue(expected);
    await expect(page.getByTestId("unsynced")).toBeHidden();
  }
  expect((await serverText(request, id)).text).toBe(expected);
  const revision = (await serverText(request, id)).revision;
  for (const page of [a, b, c]) await expect(page.getByTestId("revision")).toHaveText(`Revision ${revision}`);

  // Remote typing does not move the local caret.
  await caretAt(b, 2);
  await typeAtEndOfLine(a, 2, "!");
  await expect(b.getByTestId("editor")).toHaveValue("one (Ana)\ntwo (Ben)\nthree (Cy)!\n");
  const caret = await b.getByTestId("editor").evaluate((el: HTMLTextAreaElement) => [el.selectionStart, el.selectionEnd]);
  expect(caret).toEqual([2, 2]);
  await Promise.all(contexts.map((context) => context.close()));
});

test("a same-line conflict: the first edit stands, the other is restored and kept", async ({ browser }) => {
  const { context: ana, page: a } = await newUser(browser, "Ana");
  const { context: ben, page: b, user: benUser } = await newUser(browser, "Ben");
  const request = ana.request;
  const id = await newDocument(request, "first line\nsecond line\n");
  await share(request, id, benUser.email);
  const valve = await withValve(b);
  await openEditor(a, id);
  await openEditor(b, id);

  // Ben does not hear from the server for a moment: both edit line 1 at once.
  valve.hold();
  await typeAtEndOfLine(a, 0, " A");
  await expect(a.getByTestId("unsynced")).toBeHidden();
  await typeAtEndOfLine(b, 0, " B");
  await expect(b.getByTestId("editor")).toHaveValue("first line B\nsecond line\n");
  valve.release();

  // Ana committed first: Ben's page goes back to the merged text at once,
  // says who won, and keeps his edit.
  await expect(b.getByTestId("editor")).toHaveValue("first line A\nsecond line\n");
  await expect(b.getByTestId("flash")).toContainText("Ana changed line 1 first");
  await expect(b.getByTestId("tray-entry")).toHaveCount(1);
  await expect(b.getByTestId("tray-text")).toHaveText(" B");
  await expect(a.getByTestId("editor")).toHaveValue("first line A\nsecond line\n");
  await expect(b.getByTestId("unsynced")).toBeHidden();

  // The tray survives a reload.
  await b.reload();
  await expect(b.getByTestId("connection")).toHaveText("Connected");
  await expect(b.getByTestId("editor")).toHaveValue("first line A\nsecond line\n");
  await expect(b.getByTestId("tray-entry")).toHaveCount(1);

  // Re-apply puts it back as a fresh change that everyone gets.
  await b.getByTestId("reapply").click();
  await expect(b.getByTestId("tray-entry")).toHaveCount(0);
  await expect(b.getByTestId("editor")).toHaveValue("first line A B\nsecond line\n");
  await expect(a.getByTestId("editor")).toHaveValue("first line A B\nsecond line\n");
  expect((await serverText(request, id)).text).toBe("first line A B\nsecond line\n");

  // Discard drops an entry.
  await expect(b.getByTestId("unsynced")).toBeHidden();
  valve.hold();
  await typeAtEndOfLine(a, 1, " again");
  await expect(a.getByTestId("unsynced")).toBeHidden();
  await typeAtEndOfLine(b, 1, " clash");
  valve.release();
  await expect(b.getByTestId("tray-entry")).toHaveCount(1);
  await b.getByTestId("discard").click();
  await expect(b.getByTestId("tray-entry")).toHaveCount(0);
  await expect(b.getByTestId("editor")).toHaveValue("first line A B\nsecond line again\n");
  await ana.close();
  await ben.close();
});

test("unsynced text shows a badge and a warning before closing the tab", async ({ page }) => {
  await signUp(page.request, "Solo");
  const id = await newDocument(page.request, "offline\n");
  // A socket that never reaches the server: nothing can be acknowledged.
  await page.routeWebSocket(/\/ws(\/d\/[a-z0-9]+)?$/, () => {});
  await page.goto(`/d/${id}`);
  await expect(page.getByTestId("connection")).toHaveText("Connecting…");
  await caretAt(page, 7);
  await page.keyboard.type(" edits");
  await expect(page.getByTestId("unsynced")).toBeVisible();
  const dialog = page.waitForEvent("dialog");
  await page.close({ runBeforeUnload: true });
  expect((await dialog).type()).toBe("beforeunload");
  await (await dialog).accept();
});
