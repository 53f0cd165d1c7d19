// Watches the team channel of the Microsoft 365 Agents Playground while the sandbox plays
// its scenario: the monitoring session's living card appears once, a failure arrives as
// a reply in the card's thread, and a circuit's row on that same card changes as its
// retry completes.
//
//   node watch_living_card.mjs '<json request>'
//   request: {"url": "http://127.0.0.1:PORT/", "chromium": "/usr/bin/chromium",
//             "artifacts": "DIR", "botUrl": "http://127.0.0.1:BOTPORT",
//             "sessionTitle": "circuit-training", "circuit": "PLANT002/CIRCUIT02",
//             "failure": "loss became NaN", "installBeforeSimS": 90,
//             "stepTimeoutMs": 30000, "eventTimeoutMs": 90000,
//             "modules": "/path/with/node_modules" (optional)}
//
// The bot must be installed (the page loaded) before the scenario's first session
// events are announced, `installBeforeSimS` simulated seconds in; later, the channel
// would have missed them, and the script says so instead of waiting in vain.
//
// stdout gets one JSON line per finished step and a last line {"ok": true,
// "installedAtSimS", "firstCard", "firstRow", "firstCount", "reply",
// "replyBelowTheCard", "updatedCard", "updatedRow", "sessionCards", "sessionThreads",
// "frames": [...], "blockedRequests": [...]}: the card's text and the circuit's row when
// it first appeared and once the row read Completed, how many session cards and threads
// the channel showed, and `frames`, what the playground told the page about messages
// (see playground_browser.mjs, also for failures and the loopback rule).

import {
  literal,
  loadPage,
  main,
  openTeamChannel,
  runBrowserScript,
} from "./playground_browser.mjs";

const POLL_MS = 250;

/**
 * A circuit's row as a person reads the card: the circuit over "attempt N · job" on the
 * left, state over elapsed on the right; as "state · elapsed · attempt N · job".
 */
function rowValue(innerText, circuit) {
  const lines = innerText
    .split("\n")
    .map((line) => line.trim())
    .filter(Boolean);
  const at = lines.indexOf(circuit);
  if (at < 0 || at + 3 >= lines.length) return null;
  const [detail, state, elapsed] = lines.slice(at + 1, at + 4);
  return `${state} · ${elapsed} · ${detail}`;
}

async function waitForValue(what, probe, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    last = await probe();
    if (last.done) return last.value;
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last seen: ${last.seen}`);
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

async function sandboxElapsedS(botUrl) {
  const answer = await fetch(`${botUrl}/_sandbox/state`);
  if (!answer.ok) {
    throw new Error(`GET ${botUrl}/_sandbox/state answered ${answer.status}`);
  }
  return (await answer.json()).clock.elapsed_s;
}

async function watchTheChannel({ page, request, step, screenshot, frames }) {
  const { url, botUrl, sessionTitle, circuit, failure, installBeforeSimS } = request;
  const eventTimeoutMs = request.eventTimeoutMs ?? 90000;

  const installed = await step("load the playground page", async () => {
    const loaded = await loadPage(page, url, screenshot);
    // Loading the page installs the bot: how far into the scenario that was.
    const installedAtSimS = await sandboxElapsedS(botUrl);
    if (installBeforeSimS != null && installedAtSimS >= installBeforeSimS) {
      throw new Error(
        `the bot was installed ${Math.round(installedAtSimS)} s into the scenario (simulated), ` +
          `after its first events (${installBeforeSimS} s): the machine is too slow for this --speed`,
      );
    }
    return { ...loaded, installedAtSimS };
  });
  await step("open the team channel", () => openTeamChannel(page, screenshot));

  const sessionHeading = page.getByRole("heading", {
    name: new RegExp(`^\\W*${literal(sessionTitle)}$`),
  });
  // Every rendered card in the open channel whose title is the session's.
  const sessionCards = page.locator(".ac-adaptiveCard").filter({ has: sessionHeading });
  // A post and its replies are one group; the card is the post.
  const thread = page.getByRole("group").filter({ has: sessionCards });

  const first = await step("see the session card appear in the channel", async () => {
    await sessionCards.first().waitFor({ timeout: eventTimeoutMs });
    const text = await sessionCards.first().innerText();
    await sessionCards.first().scrollIntoViewIfNeeded();
    return {
      screenshot: await screenshot("session-card"),
      count: await sessionCards.count(),
      text,
      row: rowValue(text, circuit),
    };
  });

  const reply = await step("see the failure as a reply in the card's thread", async () => {
    const replies = thread.locator(".ac-adaptiveCard").filter({ hasText: failure });
    await replies.first().waitFor({ timeout: eventTimeoutMs });
    // A reply sits below its post, inside the post's thread.
    const follows = (card, other) =>
      Boolean(card.compareDocumentPosition(other) & Node.DOCUMENT_POSITION_FOLLOWING);
    const below = await sessionCards
      .first()
      .evaluate(follows, await replies.first().elementHandle());
    await replies.first().scrollIntoViewIfNeeded();
    return {
      screenshot: await screenshot("failure-reply"),
      text: await replies.first().innerText(),
      belowTheCard: below,
    };
  });

  const updated = await step(`see ${circuit} change on the same card`, async () => {
    const row = await waitForValue(
      `${circuit} to read Completed on the session card`,
      async () => {
        const count = await sessionCards.count();
        const text = count ? await sessionCards.first().innerText() : "";
        const value = rowValue(text, circuit);
        return { done: Boolean(value && value.includes("Completed")), value, seen: value };
      },
      eventTimeoutMs,
    );
    await sessionCards.first().scrollIntoViewIfNeeded();
    return {
      screenshot: await screenshot("card-updated"),
      count: await sessionCards.count(),
      threads: await thread.count(),
      text: await sessionCards.first().innerText(),
      row,
    };
  });

  await step("see the whole thread", async () => {
    // The channel scrolls inside the page: make the window tall enough for the thread.
    const box = await thread.first().boundingBox();
    const viewport = page.viewportSize();
    await page.setViewportSize({
      width: viewport.width,
      height: Math.max(viewport.height, Math.ceil((box?.height ?? 0) + 400)),
    });
    await thread.first().scrollIntoViewIfNeeded();
    const file = await screenshot("session-thread");
    await page.setViewportSize(viewport);
    return { screenshot: file };
  });

  return {
    installedAtSimS: installed.installedAtSimS,
    firstCard: first.text,
    firstRow: first.row,
    firstCount: first.count,
    reply: reply.text,
    replyBelowTheCard: reply.belowTheCard,
    updatedCard: updated.text,
    updatedRow: updated.row,
    sessionCards: updated.count,
    sessionThreads: updated.threads,
    frames,
  };
}

main(() => runBrowserScript(["botUrl", "sessionTitle", "circuit", "failure"], watchTheChannel));
