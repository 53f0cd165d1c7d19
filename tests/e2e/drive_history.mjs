// Asks mlbot, in the Agents Playground's team channel in headless Chromium, for the
// `history` of PLANT002/CIRCUIT02 and reads what the page shows (the run-time chart or its
// fallback, and the table). The Python test judges the text; the script fails only when
// the card never arrives.
//
//   node drive_history.mjs '<json request>'
//   request: {"url": "http://127.0.0.1:PORT/", "chromium": "/usr/bin/chromium",
//             "artifacts": "DIR", "botName": "mlbot", "stepTimeoutMs": 30000}

import {
  composer,
  literal,
  loadPage,
  main,
  openTeamChannel,
  runBrowserScript,
} from "./playground_browser.mjs";

async function historyInTheChannel({ page, request, step, screenshot }) {
  const { url, botName } = request;

  await step("load the playground page", () => loadPage(page, url, screenshot));
  await step("open the team channel", () => openTeamChannel(page, screenshot));

  const postBox = composer(page);
  async function postMention(text) {
    const box = postBox.getByRole("textbox");
    await box.click();
    await page.keyboard.type(`@${botName.slice(0, 4)}`);
    await page.getByRole("menuitem", { name: botName }).first().click();
    await box.getByText(botName).waitFor();
    await page.keyboard.type(` ${text}`);
    const exact = new RegExp(`^\\s*${literal(botName)}\\s+${literal(text)}\\s*$`);
    await box.filter({ hasText: exact }).waitFor();
    await postBox.getByRole("button", { name: "Post", exact: true }).click();
  }

  async function shoot(name, element) {
    const size = page.viewportSize();
    const box = await element.boundingBox();
    const height = Math.max(size.height, Math.ceil((box?.height ?? 0) + 400));
    if (height > size.height) await page.setViewportSize({ width: size.width, height });
    await element.scrollIntoViewIfNeeded();
    const file = await screenshot(name, element);
    if (height > size.height) await page.setViewportSize(size);
    return file;
  }

  const history = await step("mention the bot with history and see both attempts", async () => {
    // The retry of PLANT002/CIRCUIT02 finishes a little after its failure: ask again until
    // the card shows it (the first answers may show the failed attempt alone).
    for (let asked = 1; ; asked += 1) {
      await postMention("history PLANT002/CIRCUIT02");
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
        return { screenshot: await shoot("history", card), text, asked, chartDrawn };
      }
      await page.waitForTimeout(15000);
    }
  });

  return { history };
}

main(() => runBrowserScript(["botName"], historyInTheChannel));
