// Drives the Microsoft 365 Agents Playground's web page in headless Chromium, as a person
// would: open the team channel, post "@bot status", wait for the status card, post
// "@bot retry <circuit>", click "Queue the retry" on the confirmation card and wait for
// the card to be replaced by the answer.
//
//   node drive_playground.mjs '<json request>'
//   request: {"url": "http://127.0.0.1:PORT/", "chromium": "/usr/bin/chromium",
//             "artifacts": "DIR", "botName": "Test Bot", "circuit": "PLANT001/CIRCUIT01",
//             "stepTimeoutMs": 30000, "modules": "/path/with/node_modules" (optional)}
//
// stdout gets one JSON line per finished step ({"step", "screenshot"}) and a last line
// {"ok": true, "statusCard": "...", "confirmCard": "...", "answerCard": "...",
// "blockedRequests": [...]}. On failure the last line is {"ok": false, "step", "error"}
// and DIR also holds failure.png, page.html and browser-console.log.
//
// The browser may only reach loopback: DNS resolves nothing else and any request to
// another host is aborted (and listed in blockedRequests).

import fs from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const LOOPBACK_HOSTS = new Set(["127.0.0.1", "localhost", "[::1]"]);

function emit(line) {
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

async function loadPlaywright(modules) {
  // Resolve from the project's node_modules: the given folder, else this file's tree.
  const base = modules
    ? path.join(modules, "package.json")
    : fileURLToPath(import.meta.url);
  const require = createRequire(base);
  let entry;
  try {
    entry = require.resolve("playwright-core");
  } catch {
    throw new Error("cannot find playwright-core: run `npm ci` (make node_modules/.installed)");
  }
  const module = await import(pathToFileURL(entry).href);
  return module.default ?? module;
}

async function main() {
  const request = JSON.parse(process.argv[2] ?? "{}");
  const {
    url,
    chromium: executablePath,
    artifacts,
    botName,
    circuit,
    stepTimeoutMs = 30000,
    modules,
  } = request;
  if (!url || !executablePath || !artifacts || !botName || !circuit) {
    throw new Error("request needs url, chromium, artifacts, botName and circuit");
  }
  fs.mkdirSync(artifacts, { recursive: true });
  const playwright = await loadPlaywright(modules);

  const consoleLines = [];
  const blockedRequests = [];
  let page;
  let browser;
  let shot = 0;
  let current = "start Chromium";

  async function screenshot(name) {
    shot += 1;
    const file = path.join(artifacts, `${String(shot).padStart(2, "0")}-${name}.png`);
    await page.screenshot({ path: file });
    return file;
  }

  async function step(name, action) {
    current = name;
    const result = await action();
    emit({ step: name, ...(result ?? {}) });
    return result;
  }

  try {
    browser = await playwright.chromium.launch({
      executablePath,
      headless: true,
      args: [
        // Belt and braces with the request filter below: no name resolves but loopback.
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
        "--no-proxy-server",
      ],
    });
    const context = await browser.newContext({
      viewport: { width: 1400, height: 1000 },
      locale: "en-US",
      timezoneId: "UTC",
    });
    await context.route("**/*", (route) => {
      const target = new URL(route.request().url());
      if (target.protocol === "data:" || LOOPBACK_HOSTS.has(target.hostname)) {
        return route.continue();
      }
      blockedRequests.push(target.href);
      return route.abort("blockedbyclient");
    });
    page = await context.newPage();
    page.setDefaultTimeout(stepTimeoutMs);
    page.on("console", (message) => consoleLines.push(`${message.type()}: ${message.text()}`));
    page.on("pageerror", (error) => consoleLines.push(`pageerror: ${error.message}`));

    await step("load the playground page", async () => {
      await page.goto(url, { waitUntil: "domcontentloaded" });
      await page.getByRole("tree", { name: "Teams Channel" }).waitFor();
      return { screenshot: await screenshot("playground") };
    });

    // Opening the page installs the bot in the personal chat and the team; the team's
    // first channel is the team's own conversation.
    const channels = page.getByRole("tree", { name: "Teams Channel" }).getByRole("treeitem");
    const composer = page
      .getByRole("group")
      .filter({ has: page.getByRole("button", { name: "Post", exact: true }) });

    await step("open the team channel", async () => {
      await channels.first().click();
      await composer.getByRole("textbox").waitFor();
      return { screenshot: await screenshot("team-channel") };
    });

    const literal = (value) => value.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");

    async function postMention(text, name) {
      const box = composer.getByRole("textbox");
      await box.click();
      // The mention picker opens on "@" and narrows as the name is typed.
      await page.keyboard.type(`@${botName.slice(0, 4)}`);
      await page.getByRole("menuitem", { name: botName }).first().click();
      await box.getByText(botName).waitFor(); // the mention is in place before typing on
      await page.keyboard.type(` ${text}`);
      // Post exactly "@bot text": a keystroke lost to the picker would ask something else.
      const exact = new RegExp(`^\\s*${literal(botName)}\\s+${literal(text)}\\s*$`);
      await box.filter({ hasText: exact }).waitFor();
      const typed = await screenshot(`${name}-typed`);
      await composer.getByRole("button", { name: "Post", exact: true }).click();
      return typed;
    }

    // Each post is a thread (a group): the user's message and the bot's reply below it.
    const statusThread = page
      .getByRole("group")
      .filter({ has: page.getByRole("heading", { name: "Training status" }) });
    const statusCard = await step("mention the bot with status and see the status card", async () => {
      const typed = await postMention("status", "status");
      await statusThread.first().waitFor();
      await statusThread.first().scrollIntoViewIfNeeded();
      return {
        typed,
        screenshot: await screenshot("status-card"),
        text: await statusThread.first().innerText(),
      };
    });

    const retryThread = page
      .getByRole("group")
      .filter({ hasText: new RegExp(`retry ${literal(circuit)}`) })
      .first();
    const confirmButton = retryThread.getByRole("button", { name: "Queue the retry" });
    const confirmCard = await step("ask for a retry and see the confirmation card", async () => {
      const typed = await postMention(`retry ${circuit}`, "retry");
      await confirmButton.waitFor();
      await retryThread.scrollIntoViewIfNeeded();
      return {
        typed,
        screenshot: await screenshot("retry-confirmation"),
        text: await retryThread.innerText(),
      };
    });

    const answerCard = await step("click Queue the retry and see the card update", async () => {
      await confirmButton.click();
      await retryThread.getByRole("heading", { name: /Retry queued/ }).waitFor();
      // Replaced in place: the confirmation and its buttons are gone from the thread.
      await confirmButton.waitFor({ state: "detached" });
      await retryThread.scrollIntoViewIfNeeded();
      return {
        screenshot: await screenshot("retry-queued"),
        text: await retryThread.innerText(),
      };
    });

    emit({
      ok: true,
      statusCard: statusCard.text,
      confirmCard: confirmCard.text,
      answerCard: answerCard.text,
      blockedRequests,
    });
  } catch (error) {
    const message = String(error?.message ?? error)
      .replace(/\u001b\[[0-9;]*m/g, "") // Playwright colours its call log
      .split("\n")
      .slice(0, 6)
      .join("\n");
    if (page) {
      await page.screenshot({ path: path.join(artifacts, "failure.png") }).catch(() => {});
      const html = await page.content().catch(() => "");
      fs.writeFileSync(path.join(artifacts, "page.html"), html);
    }
    fs.writeFileSync(path.join(artifacts, "browser-console.log"), consoleLines.join("\n"));
    emit({ ok: false, step: current, error: message, blockedRequests });
    process.exitCode = 1;
  } finally {
    await browser?.close().catch(() => {});
  }
}

main().catch((error) => {
  emit({ ok: false, step: "read the request", error: String(error?.message ?? error) });
  process.exitCode = 2;
});
