import { defineConfig, devices } from "@playwright/test";

/**
 * End-to-end tests against a running `collab` server on 127.0.0.1:3000
 * (`cargo leptos end-to-end` starts it, then runs `npx playwright test` here).
 *
 * The browser is the system (Debian) Chromium, never a Playwright-downloaded
 * build: set CHROMIUM_PATH to override /usr/bin/chromium.
 */
export default defineConfig({
  testDir: "./tests",
  timeout: 30_000,
  expect: { timeout: 10_000 },
  fullyParallel: false,
  forbidOnly: !!process.env.CI,
  retries: 0,
  workers: 1,
  reporter: "list",
  use: {
    baseURL: process.env.COLLAB_E2E_URL ?? "http://127.0.0.1:3000",
    trace: "off",
  },
  projects: [
    {
      name: "chromium",
      use: {
        ...devices["Desktop Chrome"],
        launchOptions: {
          executablePath: process.env.CHROMIUM_PATH || "/usr/bin/chromium",
          args: [
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--disable-quic",
          ],
        },
      },
    },
  ],
});
