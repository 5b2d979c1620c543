// Drives Debian's Chromium with playwright-core (never a browser of playwright's own) for
// tests/browser.rs: opens PAGE_URL headless in a fresh profile, waits until the page has
// joined its chat (says `ready` on stdout), then until it shows a serverMessage, saves a
// screenshot to SCREENSHOT_PATH and says `message`. One JSON line per step on stdout.
// usage: node browser-driver.js PAGE_URL SCREENSHOT_PATH
// The browser is CHROMIUM from the environment, else /usr/bin/chromium.
"use strict";

const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");

const [pageUrl, screenshot] = process.argv.slice(2);
const say = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
const STEP_TIMEOUT_MS = 20000;

// What keeps a headless Chromium on a CI machine quiet and self-contained: no sandbox (root in
// a container), no GPU, no QUIC, no first-run or background traffic of its own.
const CHROMIUM_FLAGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

async function main() {
  if (!fs.existsSync(executablePath)) {
    say({ event: "error", message: `no Chromium at ${executablePath}: install Debian's chromium (apt-get install -y chromium; .ci/run does)` });
    process.exit(3);
  }
  const { chromium } = require("playwright-core");
  // launchPersistentContext is how playwright takes a --user-data-dir: a fresh one per run.
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "scmarket-ws-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath,
    headless: true,
    args: CHROMIUM_FLAGS,
    viewport: { width: 900, height: 600 },
  });
  try {
    const page = context.pages()[0] || (await context.newPage());
    page.on("console", (msg) => say({ event: "console", type: msg.type(), text: msg.text() }));
    page.on("pageerror", (e) => say({ event: "pageerror", message: e.message }));
    await page.goto(pageUrl);
    const data = (key) => page.evaluate((k) => document.body.dataset[k], key);
    const waitFor = async (key) => {
      await page.waitForFunction((k) => document.body.dataset[k] || document.body.dataset.error, key, { timeout: STEP_TIMEOUT_MS });
      const error = await data("error");
      if (error) throw new Error(`the page says: ${error}`);
      return data(key);
    };
    const joined = JSON.parse(await waitFor("joined"));
    say({ event: "ready", joined, transport: await data("transport") });
    const message = JSON.parse(await waitFor("message"));
    await page.screenshot({ path: screenshot });
    say({ event: "message", message, transport: await data("transport"), screenshot });
  } finally {
    await context.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
}

main().catch((e) => {
  say({ event: "error", message: String(e && e.stack ? e.stack : e) });
  process.exit(1);
});
