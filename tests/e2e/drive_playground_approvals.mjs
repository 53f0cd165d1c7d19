// Drives the Agents Playground's page in headless Chromium through the approvals card and
// the deployment health alert, as a person in the team channel would:
// post "@bot approvals" (two approvals wait), reject the staging one, see that row change
// while the prod one keeps its buttons, see the rejection announced as a rejection, then
// wait for the health alert of the degrading prod deployment and cancel its rollback.
//
//   node drive_playground_approvals.mjs '<json request>'
//   request: {"url", "chromium", "artifacts", "botName", "userName",
//             "stepTimeoutMs": 30000, "eventTimeoutMs": 120000, "modules" (optional)}
//
// stdout: one JSON line per step, then {"ok": true, "approvalsCard", "afterReject",
// "rejectedAnnouncement", "healthAlert", "afterCancel", "pictures": {...}}.

import {
  literal,
  loadPage,
  main,
  openTeamChannel,
  postMention,
  runBrowserScript,
} from "./playground_browser.mjs";

async function approvalsAndHealth({ page, request, step, screenshot }) {
  const { url, botName, userName, eventTimeoutMs = 120000 } = request;
  // Tall enough that a whole health alert fits in the chat pane for its picture.
  await page.setViewportSize({ width: 1400, height: 2400 });
  // A picture of one card: scrolled into view, with the pointer off it (a hovered message
  // shows the playground's toolbar over the card).
  async function cardPicture(name, locator) {
    await locator.scrollIntoViewIfNeeded();
    await page.mouse.move(0, 0);
    await page.evaluate(() => document.fonts.ready);
    // The mention picker opens below the composer, over the newest thread: closed first.
    const picker = page.getByRole("menuitem", { name: botName });
    if (await picker.count()) {
      await page.keyboard.press("Escape");
      await picker.first().waitFor({ state: "hidden" });
    }
    return screenshot(name, locator, { animations: "disabled" });
  }

  await step("load the playground page", () => loadPage(page, url, screenshot));
  await step("open the team channel", () => openTeamChannel(page, screenshot));


  // The thread of the "approvals" post: the user's message and the bot's card below it.
  const thread = page
    .getByRole("group")
    .filter({ hasText: new RegExp(`${literal(botName)}\\s+approvals`) })
    .first();
  const card = thread.locator(".ac-adaptiveCard").first();
  const approvalsCard = await step("ask for the approvals and see both", async () => {
    await postMention(page, botName, "approvals", () => screenshot("approvals-typed"));
    await thread.getByRole("heading", { name: /2 pending approvals/ }).waitFor();
    return {
      screenshot: await cardPicture("approvals", card),
      text: await card.innerText(),
      rejectButtons: await card.getByRole("button", { name: "Reject" }).count(),
    };
  });

  // The row of the staging approval: the innermost container with its text and a button.
  const stagingRow = card
    .locator(".ac-container")
    .filter({ hasText: /Environment\s*staging/ })
    .filter({ has: page.getByRole("button", { name: "Reject" }) })
    .last();
  const afterReject = await step("reject the staging approval and see only its row change", async () => {
    await stagingRow.getByRole("button", { name: "Reject" }).click();
    await thread.getByRole("heading", { name: /1 pending approval · 1 decided here/ }).waitFor();
    await thread.getByText(new RegExp(`Rejected\\s+by\\s+${literal(userName)}`)).waitFor();
    return {
      screenshot: await cardPicture("approvals-after-reject", card),
      text: await card.innerText(),
      rejectButtons: await card.getByRole("button", { name: "Reject" }).count(),
      approveButtons: await card.getByRole("button", { name: "Approve" }).count(),
    };
  });

  const announcement = page
    .locator(".ac-adaptiveCard")
    .filter({ has: page.getByRole("heading", { name: /Deployment to staging/ }) })
    .first();
  const rejectedAnnouncement = await step("see the rejection announced", async () => {
    await announcement.waitFor({ timeout: eventTimeoutMs });
    return {
      screenshot: await cardPicture("rejection-announced", announcement),
      text: await announcement.innerText(),
    };
  });

  const alert = page
    .locator(".ac-adaptiveCard")
    .filter({ has: page.getByRole("heading", { name: /is unhealthy/ }) })
    .first();
  const healthAlert = await step("see the health alert of the prod deployment", async () => {
    await alert.waitFor({ timeout: eventTimeoutMs });
    return {
      screenshot: await cardPicture("health-alert", alert),
      text: await alert.innerText(),
    };
  });

  const afterCancel = await step("cancel the rollback and keep the evidence", async () => {
    await alert.getByRole("button", { name: "Cancel the rollback" }).click();
    const answered = page
      .locator(".ac-adaptiveCard")
      .filter({ has: page.getByRole("heading", { name: /rollback of prod cancelled/i }) })
      .first();
    await answered.waitFor();
    return {
      screenshot: await cardPicture("health-alert-cancelled", answered),
      text: await answered.innerText(),
    };
  });

  return {
    approvalsCard,
    afterReject,
    rejectedAnnouncement,
    healthAlert,
    afterCancel,
    pageText: await page.locator("body").innerText(),
  };
}

main(() => runBrowserScript(["botName", "userName"], approvalsAndHealth));
