// Parse, check and draw Adaptive Cards with the official `adaptivecards` renderer in
// headless Chromium, all in one browser session.
//
// Input (stdin, JSON):
//   {"chromium": "/usr/bin/chromium", "modules": "/path/with/node_modules" | null,
//    "width": 440, "host_config": {...},
//    "cards": [{"name": "status", "card": {...}, "png": "/out/status.png" | null}]}
// Output (stdout): one JSON line per card, in order, as soon as it is done:
//   {"name", "png", "events": [{"phase", "kind", "source", "message"}], "text": "what it shows"}
// A problem that stops the whole run (no Chromium, no renderer, bad input) is one line on
// stderr and exit status 2.

import { readFile, mkdir } from "node:fs/promises";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));

function fail(message) {
  process.stderr.write(`${message}\n`);
  process.exit(2);
}

async function readStdin() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  return Buffer.concat(chunks).toString("utf8");
}

function loader(modules) {
  // Resolve packages from the project's node_modules: the given folder, else this file's tree.
  const base = modules ? pathToFileURL(path.join(modules, "package.json")) : import.meta.url;
  return createRequire(base);
}

function load(require, name) {
  try {
    return require.resolve(name);
  } catch {
    fail(`cannot find the npm package for ${name}: run \`npm ci\` in the project (make node_modules/.installed)`);
  }
  return undefined;
}

function send(result) {
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

async function main() {
  let request;
  try {
    request = JSON.parse(await readStdin());
  } catch (error) {
    fail(`the job list on stdin is not JSON: ${error.message}`);
  }
  const { chromium: executablePath, modules, width = 440, host_config: hostConfig, cards } = request;
  if (!Array.isArray(cards)) fail("the job list has no `cards` array");

  const require = loader(modules);
  const playwright = require(load(require, "playwright-core"));
  const rendererSource = await readFile(load(require, "adaptivecards/dist/adaptivecards.min.js"), "utf8");
  const pageSource = await readFile(path.join(here, "page.html"), "utf8");

  let browser;
  try {
    browser = await playwright.chromium.launch({ executablePath, headless: true });
  } catch (error) {
    fail(`cannot start Chromium at ${executablePath}: ${error.message.split("\n")[0]}`);
  }
  try {
    const page = await browser.newPage({
      viewport: { width: width + 64, height: 800 },
      deviceScaleFactor: 1,
      colorScheme: "light",
    });
    // The pictures must not depend on the network: nothing a card links to is fetched.
    await page.route(/^(https?|wss?|ftp):/, (route) => route.abort());
    await page.setContent(pageSource, { waitUntil: "load" });
    await page.addScriptTag({ content: rendererSource });
    await page.evaluate(() => document.fonts.ready);

    for (const job of cards) {
      const { events, text } = await page.evaluate(
        ([card, config, cardWidth]) => window.mlbotRender(card, config, cardWidth),
        [job.card, hostConfig, width],
      );
      const result = { name: job.name, png: null, events, text };
      if (job.png) {
        await mkdir(path.dirname(job.png), { recursive: true });
        await page.locator("#frame").screenshot({ path: job.png, animations: "disabled", caret: "hide" });
        result.png = job.png;
      }
      send(result);
    }
  } finally {
    await browser.close();
  }
}

main().catch((error) => fail(`card rendering failed: ${error.stack || error}`));
