import { expect, newDocument, newUser, openEditor, serverText, share, test, typeAtEndOfLine, withValve } from "./helpers";

test("sharing: a viewer's page is read-only; a share link grants a role; removal takes effect at once", async ({
  browser,
}) => {
  const owner = await newUser(browser, "Olga");
  const editor = await newUser(browser, "Egon");
  const viewer = await newUser(browser, "Vera");
  const id = await newDocument(owner.context.request, "alpha\nbeta\n", "Shared plan");
  await openEditor(owner.page, id);

  // The owner shares from the editor page: Egon can edit.
  await owner.page.getByTestId("share").click();
  await owner.page.getByTestId("share-email").fill(editor.user.email);
  await owner.page.getByTestId("share-role").selectOption("editor");
  await owner.page.getByTestId("share-add").click();
  await expect(owner.page.getByTestId("member").filter({ hasText: "Egon" })).toHaveCount(1);
  // A link for viewers, which Vera opens.
  await owner.page.getByTestId("link-role").selectOption("viewer");
  await owner.page.getByTestId("create-link").click();
  const url = await owner.page.getByTestId("link-url").inputValue();
  expect(url).toMatch(/\/s\/[0-9a-f]{64}$/);
  await viewer.page.goto(url);
  await expect(viewer.page).toHaveURL(new RegExp(`/d/${id}$`));
  await expect(viewer.page.getByTestId("connection")).toHaveText("Connected");
  await expect(viewer.page.getByTestId("view-only")).toBeVisible();
  await expect(viewer.page.getByTestId("share")).toBeHidden();
  await expect(viewer.page.getByTestId("editor")).toHaveAttribute("readonly", "");

  // The viewer cannot type; edits by others reach them live.
  await viewer.page.getByTestId("editor").focus();
  await viewer.page.keyboard.type("nope");
  const valve = await withValve(editor.page);
  await openEditor(editor.page, id);
  await expect(editor.page.getByTestId("view-only")).toBeHidden();
  await typeAtEndOfLine(editor.page, 0, " by Egon");
  await expect(viewer.page.getByTestId("editor")).toHaveValue("alpha by Egon\nbeta\n");
  expect((await serverText(owner.context.request, id)).text).toBe("alpha by Egon\nbeta\n");
  for (const page of [owner.page, editor.page, viewer.page]) {
    await expect(page.getByTestId("peer")).toHaveText(["Egon", "Olga", "Vera (viewing)"]);
  }

  // A viewer's change sent by hand is refused by the server, not only hidden.
  const refused = await viewer.page.evaluate(async (doc) => {
    return await new Promise<string>((done) => {
      const ws = new WebSocket(`${location.origin.replace("http", "ws")}/ws/d/${doc}`);
      ws.onopen = () => ws.send(JSON.stringify({ type: "join", document: doc, client: 4242 }));
      ws.onmessage = (event) => {
        const message = JSON.parse(event.data);
        if (message.type === "joined") {
          ws.send(
            JSON.stringify({
              type: "submit",
              change: { client: 4242, seq: 1, base: message.revision, delta: ["hacked ", [...message.text].length] },
            }),
          );
        } else if (message.type === "error") done(message.code);
      };
    });
  }, id);
  expect(refused).toBe("forbidden");
  expect((await serverText(owner.context.request, id)).text).toBe("alpha by Egon\nbeta\n");

  // The owner removes Egon: his page stops at once and keeps his unsent text.
  valve.mute();
  await typeAtEndOfLine(editor.page, 1, " unsent");
  await expect(editor.page.getByTestId("unsynced")).toBeVisible();
  const egon = owner.page.getByTestId("member").filter({ hasText: "Egon" });
  await egon.getByTestId("unshare").click();
  await expect(editor.page.getByTestId("connection")).toHaveText("Access removed");
  await expect(editor.page.getByTestId("flash")).toContainText("access to this document was removed");
  await expect(editor.page.getByTestId("tray-text")).toHaveText(" unsent");
  await expect(editor.page.getByTestId("editor")).toHaveValue("alpha by Egon\nbeta\n");
  await expect(editor.page.getByTestId("editor")).toHaveAttribute("readonly", "");
  await editor.page.reload();
  await expect(editor.page.getByTestId("no-such-document")).toBeVisible();
  for (const user of [owner, editor, viewer]) await user.context.close();
});

test("text, names and titles are shown as text: nothing a collaborator types runs in another browser", async ({
  browser,
}) => {
  const payloads = [
    `<script>window.pwned = "script"</script>`,
    `<img src=x onerror="window.pwned = 'img'">`,
    `"><svg onload="window.pwned = 'svg'">`,
    `<a href="javascript:window.pwned = 'link'">click me</a>`,
    `javascript:window.pwned = 'bare'`,
    `[markdown](javascript:window.pwned = 'md')`,
    `</textarea><script>window.pwned = "textarea"</script>`,
  ];
  const evilName = `<img src=x onerror=pwned=1>`;
  const evilTitle = `<script>window.pwned="title"</script><a href="javascript:window.pwned='t'">t</a>`;
  const attacker = await newUser(browser, evilName);
  const reader = await newUser(browser, `Reader <b>bold</b>`);
  for (const page of [attacker.page, reader.page]) {
    page.on("dialog", (dialog) => {
      throw new Error(`a dialog opened: ${dialog.message()}`);
    });
  }
  const id = await newDocument(attacker.context.request, "first\nsecond\n", evilTitle);
  await share(attacker.context.request, id, reader.user.email);
  await openEditor(attacker.page, id);
  const valve = await withValve(reader.page);
  await openEditor(reader.page, id);

  // The attacker types every payload; the reader sees them live, as text.
  const editor = attacker.page.getByTestId("editor");
  await editor.focus();
  await editor.evaluate((el: HTMLTextAreaElement) => el.setSelectionRange(el.value.length, el.value.length));
  for (const payload of payloads) await attacker.page.keyboard.type(payload + "\n");
  const expected = "first\nsecond\n" + payloads.map((p) => p + "\n").join("");
  await expect(reader.page.getByTestId("editor")).toHaveValue(expected);
  await expect(reader.page.getByTestId("title")).toHaveText(evilTitle);
  await expect(reader.page.getByTestId("peer").filter({ hasText: "onerror" })).toHaveText(evilName);

  // A conflict puts the attacker's name in the reader's flash, and the
  // reader's own payload in the tray.
  valve.hold();
  await typeAtEndOfLine(attacker.page, 0, " <b>");
  await expect(attacker.page.getByTestId("unsynced")).toBeHidden();
  await typeAtEndOfLine(reader.page, 0, `<img src=x onerror="window.pwned='tray'">`);
  valve.release();
  await expect(reader.page.getByTestId("flash")).toContainText(`${evilName} changed line 1 first`);
  await expect(reader.page.getByTestId("tray-text")).toHaveText(`<img src=x onerror="window.pwned='tray'">`);

  // The pages as server-rendered, fresh: the home list and the editor.
  await reader.page.goto("/");
  await expect(reader.page.getByTestId("document-link").filter({ hasText: "window.pwned" })).toHaveText(evilTitle);
  await reader.page.goto(`/d/${id}`);
  await expect(reader.page.getByTestId("connection")).toHaveText("Connected");
  await expect(reader.page.getByTestId("editor")).toHaveValue(expected.replace("first\n", "first <b>\n"));
  await attacker.page.getByTestId("share").click();
  await expect(attacker.page.getByTestId("member").filter({ hasText: "Reader" })).toContainText("Reader <b>bold</b>");

  for (const page of [attacker.page, reader.page]) {
    const found = await page.evaluate(() => ({
      pwned: (window as any).pwned ?? null,
      images: document.querySelectorAll('img[src="x"]').length,
      svgs: document.querySelectorAll("svg[onload]").length,
      bold: document.querySelectorAll("main b").length,
      javascriptLinks: [...document.querySelectorAll("a")].filter((a) => a.href.trim().toLowerCase().startsWith("javascript:"))
        .length,
      injectedScripts: [...document.querySelectorAll("script")].filter((s) => s.textContent?.trim().startsWith("window.pwned"))
        .length,
    }));
    expect(found).toEqual({ pwned: null, images: 0, svgs: 0, bold: 0, javascriptLinks: 0, injectedScripts: 0 });
  }
  await attacker.context.close();
  await reader.context.close();
});
