// Asks mlbot for its status, help and config cards in the Agents Playground's team
// channel, in headless Chromium, and measures what the page shows: on how many rendered
// lines each circuit name sits, which text is cut off at its box or the card's edge,
// what the config card shows before and after its "Show all" toggle. The Python test
// judges the measurements; the script only fails when a card never arrives.
//
//   node drive_cards.mjs '<json request>'
//   request: {"url": "http://127.0.0.1:PORT/", "chromium": "/usr/bin/chromium",
//             "artifacts": "DIR", "botName": "mlbot", "stepTimeoutMs": 30000,
//             "phoneWidth": 320}
//
// stdout gets one JSON line per finished step and a last line {"ok": true, "status":
// {...}, "help": {...}, "config": {...}, "phone": {...}, "blockedRequests": [...]}; see
// playground_browser.mjs for failures and the loopback rule.

import {
  loadPage,
  main,
  openTeamChannel,
  postMention,
  runBrowserScript,
  shootWhole,
} from "./playground_browser.mjs";

const CIRCUIT = "[A-Z]+\\d+/[A-Z]+\\d+"; // PLANT001/CIRCUIT01
// A line of a setting's name (a long name is split after an underscore), or a short value.
const SETTING = "^[A-Z][A-Za-z0-9_]*$";

/**
 * Runs in the page: every text block of `card` as the reader sees it, and each match of
 * `pattern` inside it, with the number of rendered lines it spans and whether it is cut
 * off (by an ellipsis, its own box or the card's right edge).
 */
function measure(card, pattern) {
  const cardBox = card.getBoundingClientRect();
  const lineTops = (rects) =>
    new Set([...rects].filter((r) => r.width > 0 && r.height > 0).map((r) => Math.round(r.top)))
      .size;
  const blocks = [...card.querySelectorAll(".ac-textBlock")].filter(
    (block) => block.getClientRects().length > 0, // shown, not in a hidden container
  );
  const matches = [];
  const texts = blocks.map((block) => {
    const box = block.getBoundingClientRect();
    const range = document.createRange();
    range.selectNodeContents(block);
    const walker = document.createTreeWalker(block, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      for (const found of node.data.matchAll(new RegExp(pattern, "g"))) {
        const part = document.createRange();
        part.setStart(node, found.index);
        part.setEnd(node, found.index + found[0].length);
        const rects = [...part.getClientRects()];
        const right = Math.max(...rects.map((r) => r.right));
        matches.push({
          text: found[0],
          lines: lineTops(rects),
          hidden: right > box.right + 1 || right > cardBox.right + 1,
        });
      }
    }
    return {
      text: block.innerText.trim(),
      lines: lineTops(range.getClientRects()),
      clipped: block.scrollWidth > block.clientWidth + 1 || box.right > cardBox.right + 1,
    };
  });
  return { texts, matches, width: Math.round(cardBox.width) };
}

async function cardsInTheChannel({ page, request, step, screenshot }) {
  const { url, botName, phoneWidth = 320 } = request;

  await step("load the playground page", () => loadPage(page, url, screenshot));
  await step("open the team channel", () => openTeamChannel(page, screenshot));



  /** Post the command, wait for the card with this heading; its thread and card. */
  async function ask(command, heading) {
    await postMention(page, botName, command);
    const thread = page
      .getByRole("group")
      .filter({ has: page.getByRole("heading", { name: heading }) })
      .last();
    await thread.waitFor();
    const card = thread.locator(".ac-adaptiveCard").last();
    await card.scrollIntoViewIfNeeded();
    return { thread, card };
  }

  const status = await step("mention the bot with status and see the status card", async () => {
    const { thread, card } = await ask("status", "Training status");
    return {
      screenshot: await shootWhole(page, screenshot, "status", thread),
      text: await card.innerText(),
      ...(await card.evaluate(measure, CIRCUIT)),
    };
  });

  const help = await step("mention the bot with help and see the help card", async () => {
    const { thread, card } = await ask("help", `${botName} commands`);
    return {
      screenshot: await shootWhole(page, screenshot, "help", thread),
      text: await card.innerText(),
      ...(await card.evaluate(measure, CIRCUIT)),
    };
  });

  const config = await step("mention the bot with config and see the config card", async () => {
    const { thread, card } = await ask("config", /Effective settings/);
    const before = { text: await card.innerText(), ...(await card.evaluate(measure, SETTING)) };
    const shot = await shootWhole(page, screenshot, "config", thread);
    const toggle = card.getByRole("button", { name: /^Show all \d+ settings$/ });
    const toggleTitle = (await toggle.innerText()).trim();
    await toggle.click();
    await card.getByText("MLBOT_MAX_REQUEST_BYTES", { exact: true }).waitFor();
    const after = { text: await card.innerText(), ...(await card.evaluate(measure, SETTING)) };
    return {
      screenshot: shot,
      expanded: await shootWhole(page, screenshot, "config-all", thread),
      toggle: toggleTitle,
      before,
      after,
    };
  });

  // The playground keeps a card at least ~450 px wide however narrow the page, so the
  // card itself is narrowed to a phone's message width and laid out again by the same
  // renderer.
  const phone = await step("see the status card at a phone's width", async () => {
    const thread = page
      .getByRole("group")
      .filter({ has: page.getByRole("heading", { name: "Training status" }) })
      .last();
    const card = thread.locator(".ac-adaptiveCard").last();
    await card.evaluate((element, width) => {
      Object.assign(element.style, {
        width: `${width}px`,
        minWidth: "0",
        maxWidth: `${width}px`,
      });
    }, phoneWidth);
    await card.scrollIntoViewIfNeeded();
    return {
      screenshot: await shootWhole(page, screenshot, "status-phone", thread),
      ...(await card.evaluate(measure, CIRCUIT)),
    };
  });

  return { status, help, config, phone };
}

main(() => runBrowserScript(["botName"], cardsInTheChannel));
