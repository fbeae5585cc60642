import { expect, signUp, test } from "./helpers";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

// A cluster of our own (deploy/cluster.sh): PostgreSQL, Redis, three app
// servers and nginx. The browser types through nginx while the app server
// that owns its document is killed.
const root = resolve(__dirname, "../..");

async function portFree(port: number): Promise<boolean> {
  return new Promise((done) => {
    const server = createServer();
    server.once("error", () => done(false));
    server.listen(port, "127.0.0.1", () => server.close(() => done(true)));
  });
}

async function freeBase(count: number): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const base = 30000 + Math.floor(Math.random() * 3000) * 10;
    let free = true;
    for (let p = base; p < base + count && free; p++) free = await portFree(p);
    if (free) return base;
  }
  throw new Error("no free ports");
}

test("a browser keeps typing across the failover of its app server", async ({ page, context }) => {
  const request = page.request;
  test.setTimeout(150_000);
  const port = await freeBase(6);
  const dir = mkdtempSync(join(tmpdir(), "collab-e2e-cluster-"));
  const env = {
    ...process.env,
    COLLAB_CLUSTER_DIR: dir,
    COLLAB_CLUSTER_PORT: String(port),
    COLLAB_BIN: process.env.COLLAB_BIN ?? join(root, "target/debug/collab"),
    COLLAB_LEASE_MS: "2000",
    RUST_LOG: "warn",
  };
  const cluster = (...args: string[]) =>
    execFileSync(join(root, "deploy/cluster.sh"), args, { env, stdio: "inherit", timeout: 120_000 });
  cluster("start");
  try {
    const base = `http://127.0.0.1:${port}`;
    await signUp(request, "Typist", base);
    const created = await request.post(`${base}/api/documents`, { data: { title: "Failover", text: "" } });
    const id = (await created.json()).id;
    await page.goto(`${base}/d/${id}`);
    await expect(page.getByTestId("connection")).toHaveText("Connected");
    const editor = page.getByTestId("editor");
    await editor.focus();

    const typed: string[] = [];
    for (let n = 0; n < 8; n++) {
      typed.push(`t${n} `);
      await page.keyboard.type(`t${n} `);
    }
    await expect(page.getByTestId("unsynced")).toBeHidden();

    // The server that owns the document is the one the node cookie names.
    const cookie = (await context.cookies(`${base}/ws/d/${id}`)).find((c) => c.name === "collab_node");
    expect(cookie, "the owner set its node cookie").toBeTruthy();
    const owner = cookie!.value.replace(/^n/, "");
    // Record what the connection indicator says from here on.
    await page.getByTestId("connection").evaluate((el) => {
      const seen: string[] = [];
      (window as any).connectionStates = seen;
      new MutationObserver(() => seen.push(el.textContent ?? "")).observe(el, {
        childList: true,
        subtree: true,
        characterData: true,
      });
    });
    cluster("kill-node", owner);

    // The page notices, reconnects through nginx to another server (which
    // takes the document over) and resends what was not acknowledged.
    for (let n = 8; n < 16; n++) {
      typed.push(`t${n} `);
      await page.keyboard.type(`t${n} `);
    }
    await expect(page.getByTestId("connection")).toHaveText("Connected", { timeout: 30_000 });
    await expect(page.getByTestId("unsynced")).toBeHidden({ timeout: 30_000 });
    // The page showed the reconnect.
    const states: string[] = await page.evaluate(() => (window as any).connectionStates);
    expect(states.some((s) => s.startsWith("Offline") || s.startsWith("Connecting"))).toBeTruthy();
    const after = (await context.cookies(`${base}/ws/d/${id}`)).find((c) => c.name === "collab_node");
    expect(after?.value).not.toBe(cookie!.value);

    const final = (await (await request.get(`${base}/api/documents/${id}`)).json()).text;
    expect(final).toBe(typed.join(""));
    await expect(editor).toHaveValue(final);
  } finally {
    cluster("stop");
    rmSync(dir, { recursive: true, force: true });
  }
});
