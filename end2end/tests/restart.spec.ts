import { type APIRequestContext } from "@playwright/test";
import { expect, signUp, test } from "./helpers";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

// A server of our own (not the one cargo-leptos started), so the test can
// kill it: the same binary, its own port and data directory.
const root = resolve(__dirname, "../..");
const binary = process.env.COLLAB_BIN ?? join(root, "target/debug/collab");
const port = Number(process.env.COLLAB_E2E_RESTART_PORT ?? 3107);
const base = `http://127.0.0.1:${port}`;

function startServer(dataDir: string): ChildProcess {
  return spawn(binary, [], {
    cwd: root,
    env: {
      ...process.env,
      COLLAB_ADDR: `127.0.0.1:${port}`,
      COLLAB_DATA_DIR: dataDir,
      LEPTOS_OUTPUT_NAME: "collab",
      LEPTOS_SITE_ROOT: process.env.LEPTOS_SITE_ROOT ?? "target/site",
      LEPTOS_SITE_PKG_DIR: "pkg",
      LEPTOS_SITE_ADDR: `127.0.0.1:${port}`,
      LEPTOS_RELOAD_PORT: String(port + 1),
      RUST_LOG: "warn",
    },
    stdio: "inherit",
  });
}

async function waitUntilUp(request: APIRequestContext) {
  for (let i = 0; i < 100; i++) {
    try {
      if ((await request.get(`${base}/healthz`)).ok()) return;
    } catch {}
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error("the server did not start");
}

test("a server killed during typing loses nothing that was acknowledged", async ({ page }) => {
  // The page's own request context: it shares the page's session cookie.
  const request = page.request;
  test.setTimeout(90_000);
  const dataDir = mkdtempSync(join(tmpdir(), "collab-e2e-"));
  let server = startServer(dataDir);
  try {
    await waitUntilUp(request);
    await signUp(request, "Restarter", base);
    const created = await request.post(`${base}/api/documents`, { data: { title: "Restart", text: "" } });
    const id = (await created.json()).id;
    await page.goto(`${base}/d/${id}`);
    await expect(page.getByTestId("connection")).toHaveText("Connected");
    const editor = page.getByTestId("editor");
    await editor.focus();

    const typed: string[] = [];
    for (let n = 0; n < 12; n++) {
      typed.push(`w${n} `);
      await page.keyboard.type(`w${n} `);
    }
    // Everything so far acknowledged, then the server dies without warning.
    await expect(page.getByTestId("unsynced")).toBeHidden();
    const acknowledged = (await (await request.get(`${base}/api/documents/${id}`)).json()).text;
    server.kill("SIGKILL");
    await expect(page.getByTestId("connection")).toContainText("Offline");

    // Typing goes on while it is down: kept locally, marked unsynced.
    for (let n = 12; n < 18; n++) {
      typed.push(`w${n} `);
      await page.keyboard.type(`w${n} `);
    }
    await expect(page.getByTestId("unsynced")).toBeVisible();

    server = startServer(dataDir);
    await waitUntilUp(request);
    const afterCrash = (await (await request.get(`${base}/api/documents/${id}`)).json()).text;
    // (The page may already have reconnected and resent the rest.)
    expect(afterCrash.startsWith(acknowledged)).toBeTruthy();

    // The page reconnects by itself and resends what was not acknowledged.
    await expect(page.getByTestId("connection")).toHaveText("Connected", { timeout: 15_000 });
    await expect(page.getByTestId("unsynced")).toBeHidden({ timeout: 15_000 });
    const final = (await (await request.get(`${base}/api/documents/${id}`)).json()).text;
    expect(final).toBe(typed.join(""));
    await expect(editor).toHaveValue(final);
  } finally {
    server.kill("SIGKILL");
    rmSync(dataDir, { recursive: true, force: true });
  }
});
