// What every browser script of the end-to-end tests shares: headless Chromium on the
// playground's page, kept on loopback, with numbered screenshots and a report of each
// step on stdout.
//
// stdout gets one JSON line per finished step ({"step", ...}) and a last line: the
// script's outcome ({"ok": true, ..., "blockedRequests": [...]}) or, on failure,
// {"ok": false, "step", "error", "blockedRequests"}; the artifacts folder then also
// holds failure.png, page.html and browser-console.log.
//
// Every message the playground creates or updates on the page (its conversation
// WebSocket) is kept, passed to the script as `frames` and written to
// conversation-frames.jsonl in the artifacts folder: {action, conversation, id, heading,
// facts, rows, text}, where `facts` are the first FactSet of its card as {title: value}
// and `rows` its job rows as {circuit: "state · elapsed · attempt N · job"}.
//
// The browser may only reach loopback: DNS resolves nothing else and any request to
// another host is aborted (and listed in blockedRequests).

import fs from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const LOOPBACK_HOSTS = new Set(["127.0.0.1", "localhost", "[::1]"]);

export function emit(line) {
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

/** `value` as a literal inside a regular expression. */
export function literal(value) {
  return value.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
}

function cardTexts(node, out = []) {
  if (Array.isArray(node)) {
    node.forEach((child) => cardTexts(child, out));
  } else if (node && typeof node === "object") {
    if (node.type === "TextBlock" && typeof node.text === "string") {
      out.push(node.text);
    }
    if (node.type === "FactSet") {
      node.facts.forEach((fact) => out.push(`${fact.title}: ${fact.value}`));
    }
    Object.values(node).forEach((child) => cardTexts(child, out));
  }
  return out;
}

function firstFacts(node) {
  if (Array.isArray(node)) {
    for (const child of node) {
      const found = firstFacts(child);
      if (found) return found;
    }
  } else if (node && typeof node === "object") {
    if (node.type === "FactSet") {
      return Object.fromEntries(node.facts.map((fact) => [fact.title, fact.value]));
    }
    for (const child of Object.values(node)) {
      const found = firstFacts(child);
      if (found) return found;
    }
  }
  return null;
}

/**
 * The job rows of a card that lists jobs (`status`, the living card): each a ColumnSet
 * of two columns, circuit over "attempt N · job" and state over elapsed, as
 * {circuit: "state · elapsed · attempt N · job"}.
 */
function jobRows(node, out = {}) {
  if (Array.isArray(node)) {
    node.forEach((child) => jobRows(child, out));
  } else if (node && typeof node === "object") {
    const columns = node.type === "ColumnSet" ? (node.columns ?? []) : [];
    const blocks = columns.map((column) => (column.items ?? []).map((item) => item.text));
    if (blocks.length === 2 && blocks.every((items) => items.length === 2)) {
      const [[circuit, detail], [state, elapsed]] = blocks;
      out[circuit] = `${state} · ${elapsed} · ${detail}`;
    } else {
      Object.values(node).forEach((child) => jobRows(child, out));
    }
  }
  return out;
}

/** A message the playground created or updated, as its page was told. */
function frameOf(payload) {
  let data;
  try {
    data = JSON.parse(payload);
  } catch {
    return null;
  }
  if (!data || !["createMessage", "updateMessage"].includes(data.action)) {
    return null;
  }
  const message = data.message ?? {};
  const cards = (message.attachments ?? []).map((attachment) => attachment.content);
  const texts = cardTexts(cards);
  return {
    action: data.action,
    conversation: data.actionConversationId,
    id: message.messageId,
    heading: texts[0] ?? message.text ?? "",
    facts: firstFacts(cards),
    rows: jobRows(cards),
    text: [message.text, ...texts].filter(Boolean).join("\n"),
  };
}

function listenToConversations(page, frames) {
  page.on("websocket", (socket) => {
    if (!socket.url().includes("/_ws_conversation/")) return;
    socket.on("framereceived", ({ payload }) => {
      const frame = frameOf(typeof payload === "string" ? payload : payload.toString());
      if (frame) frames.push(frame);
    });
  });
}

async function loadPlaywright(modules) {
  // Resolve from the project's node_modules: the given folder, else this file's tree.
  const base = modules ? path.join(modules, "package.json") : fileURLToPath(import.meta.url);
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

/**
 * Parse the request (argv[2]), open the page's browser and run `script`.
 *
 * `script({page, request, step, screenshot, frames})` returns the outcome's fields.
 */
export async function runBrowserScript(required, script) {
  const request = JSON.parse(process.argv[2] ?? "{}");
  const missing = ["url", "chromium", "artifacts", ...required].filter((key) => !request[key]);
  if (missing.length) {
    throw new Error(`the request needs ${missing.join(", ")}`);
  }
  const { chromium: executablePath, artifacts, stepTimeoutMs = 30000, modules } = request;
  fs.mkdirSync(artifacts, { recursive: true });
  const playwright = await loadPlaywright(modules);

  const consoleLines = [];
  const blockedRequests = [];
  const frames = [];
  let page;
  let browser;
  let shot = 0;
  let current = "start Chromium";

  // `options` go to Playwright's screenshot (e.g. `animations: "disabled"` for a card
  // still fading in).
  async function screenshot(name, locator, options = {}) {
    shot += 1;
    const file = path.join(artifacts, `${String(shot).padStart(2, "0")}-${name}.png`);
    await (locator ?? page).screenshot({ ...options, path: file });
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
    listenToConversations(page, frames);

    const outcome = await script({ page, request, step, screenshot, frames });
    emit({ ok: true, ...outcome, blockedRequests });
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
    fs.writeFileSync(
      path.join(artifacts, "conversation-frames.jsonl"),
      frames.map((frame) => `${JSON.stringify(frame)}\n`).join(""),
    );
  }
}

/** Run `main` as the script; a thrown error (a bad request) is reported as the outcome. */
export function main(run) {
  run().catch((error) => {
    emit({ ok: false, step: "read the request", error: String(error?.message ?? error) });
    process.exitCode = 2;
  });
}

/** The team's channels in the left rail; the first is the team's own conversation. */
export function teamChannels(page) {
  return page.getByRole("tree", { name: "Teams Channel" }).getByRole("treeitem");
}

export async function loadPage(page, url, screenshot) {
  await page.goto(url, { waitUntil: "domcontentloaded" });
  await page.getByRole("tree", { name: "Teams Channel" }).waitFor();
  return { screenshot: await screenshot("playground") };
}

/** The box where a new channel post is written, with its Post button. */
export function composer(page) {
  return page
    .getByRole("group")
    .filter({ has: page.getByRole("button", { name: "Post", exact: true }) });
}

export async function openTeamChannel(page, screenshot) {
  await teamChannels(page).first().click();
  await composer(page).getByRole("textbox").waitFor();
  return { screenshot: await screenshot("team-channel") };
}

/**
 * Posts "@bot text" in the team channel's new-post box. The mention picker opens on "@"
 * and narrows as the name is typed; the post goes only once the box holds exactly the
 * mention and the text (a keystroke lost to the picker would ask something else).
 * `beforePost` (say, a screenshot of the typed post) runs just before Post; its result is
 * returned.
 */
export async function postMention(page, botName, text, beforePost = async () => undefined) {
  const postBox = composer(page);
  const box = postBox.getByRole("textbox");
  await box.click();
  await page.keyboard.type(`@${botName.slice(0, 4)}`);
  await page.getByRole("menuitem", { name: botName }).first().click();
  await box.getByText(botName).waitFor(); // the mention is in place before typing on
  await page.keyboard.type(` ${text}`);
  const exact = new RegExp(`^\\s*${literal(botName)}\\s+${literal(text)}\\s*$`);
  await box.filter({ hasText: exact }).waitFor();
  const result = await beforePost();
  await postBox.getByRole("button", { name: "Post", exact: true }).click();
  return result;
}

/** A screenshot of `element` whole: the page is made tall enough to hold it. */
export async function shootWhole(page, screenshot, name, element) {
  const size = page.viewportSize();
  const box = await element.boundingBox();
  const height = Math.max(size.height, Math.ceil((box?.height ?? 0) + 400));
  if (height > size.height) await page.setViewportSize({ width: size.width, height });
  await element.scrollIntoViewIfNeeded();
  const file = await screenshot(name, element);
  if (height > size.height) await page.setViewportSize(size);
  return file;
}
