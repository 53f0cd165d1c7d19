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
// "blockedRequests": [...]}; see playground_browser.mjs for failures and the loopback
// rule.

import {
  literal,
  loadPage,
  main,
  openTeamChannel,
  postMention,
  runBrowserScript,
} from "./playground_browser.mjs";

async function commandsInTheChannel({ page, request, step, screenshot }) {
  const { url, botName, circuit } = request;

  await step("load the playground page", () => loadPage(page, url, screenshot));
  // Opening the page installs the bot in the personal chat and the team; the team's
  // first channel is the team's own conversation.
  await step("open the team channel", () => openTeamChannel(page, screenshot));


  // Each post is a thread (a group): the user's message and the bot's reply below it.
  const statusThread = page
    .getByRole("group")
    .filter({ has: page.getByRole("heading", { name: "Training status" }) });
  const statusCard = await step("mention the bot with status and see the status card", async () => {
    const typed = await postMention(page, botName, "status", () => screenshot("status-typed"));
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
    const typed = await postMention(page, botName, `retry ${circuit}`, () =>
      screenshot("retry-typed"),
    );
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

  return {
    statusCard: statusCard.text,
    confirmCard: confirmCard.text,
    answerCard: answerCard.text,
  };
}

main(() => runBrowserScript(["botName", "circuit"], commandsInTheChannel));
