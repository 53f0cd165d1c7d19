// Asks mlbot, in the Agents Playground's team channel in headless Chromium, for the
// `history` of PLANT002/CIRCUIT02 and reads what the page shows (the run-time chart or its
// fallback, and the table). The Python test judges the text; the script fails only when
// the card never arrives.
//
//   node drive_history.mjs '<json request>'
//   request: {"url": "http://127.0.0.1:PORT/", "chromium": "/usr/bin/chromium",
//             "artifacts": "DIR", "botName": "mlbot", "stepTimeoutMs": 30000}

import {
  loadPage,
  main,
  openTeamChannel,
  postMention,
  runBrowserScript,
  shootWhole,
} from "./playground_browser.mjs";

async function historyInTheChannel({ page, request, step, screenshot }) {
  const { url, botName, controlUrl } = request;

  await step("load the playground page", () => loadPage(page, url, screenshot));
  await step("open the team channel", () => openTeamChannel(page, screenshot));



  const history = await step("mention the bot with history and see both attempts", async () => {
    // The retry of PLANT002/CIRCUIT02 finishes a little after its failure: ask again until
    // the card shows it (the first answers may show the failed attempt alone).
    for (let asked = 1; ; asked += 1) {
      await postMention(page, botName, "history PLANT002/CIRCUIT02");
      const card = page
        .locator(".ac-adaptiveCard")
        .filter({ hasText: "PLANT002/CIRCUIT02 — last" })
        .nth(asked - 1);
      await card.waitFor();
      const text = await card.innerText();
      if ((text.includes("last 2 attempt") && text.includes("Completed")) || asked >= 12) {
        await card.scrollIntoViewIfNeeded();
        // A drawn chart is an SVG; where charts are not drawn, the fallback line shows.
        const chartDrawn = (await card.locator("svg").count()) > 0;
        return { screenshot: await shootWhole(page, screenshot, "history", card), text, asked, chartDrawn };
      }
      await page.waitForTimeout(15000);
    }
  });

  // A training that fails once the bot is in the channel: its card shows why it failed
  // (the log's last lines), @mentions the circuit's owner, and offers Acknowledge.
  const failure = await step("see a new failure with its owner, then acknowledge it", async () => {
    const submitted = await fetch(`${controlUrl}/_sandbox/jobs`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({
        circuit: "PLANT002/CIRCUIT09",
        duration_s: 20,
        outcomes: ["Failed"],
        error_message: "CUDA out of memory: tried to allocate 2.00 GiB (batch size 512)",
      }),
    });
    if (submitted.status !== 201) throw new Error(`submit answered ${submitted.status}`);
    const card = page
      .locator(".ac-adaptiveCard")
      .filter({ hasText: "PLANT002/CIRCUIT09 — training failed" })
      .last();
    await card.waitFor({ timeout: 120000 });
    await card.scrollIntoViewIfNeeded();
    const before = await card.innerText();
    const shot = await shootWhole(page, screenshot, "failure", card);
    await card.getByRole("button", { name: "Acknowledge" }).click();
    const taken = page
      .locator(".ac-adaptiveCard")
      .filter({ hasText: "PLANT002/CIRCUIT09" })
      .filter({ hasText: "is on it" })
      .last();
    await taken.waitFor();
    await taken.scrollIntoViewIfNeeded();
    return {
      screenshot: shot,
      acknowledged: await shootWhole(page, screenshot, "failure-acknowledged", taken),
      text: before,
      after: await taken.innerText(),
    };
  });

  return { history, failure };
}

main(() => runBrowserScript(["botName"], historyInTheChannel));
