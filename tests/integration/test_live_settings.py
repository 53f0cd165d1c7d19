"""A change to the variable group reaches the running bot, without a restart.

The bot runs over real HTTP against the sandbox emulators on a manual clock. The test
changes `mlops-pipeline-settings` in the emulated Azure DevOps and lets the bot's own
refresher read it back through the real adapter; then the email reminders go to the new
recipients (over SMTP to the sandbox's mail sink), the cards go to the new Workflows
webhook (a local HTTP stand-in), and the deployment health watch judges by the new
thresholds.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from config.settings import settings_report
from tests.conftest import SandboxBot, StartSandboxBot, serve_app
from tests.standins.connector import ConnectorStandIn
from tests.teams_payloads import bot_added_to_team

GROUP = "mlops-pipeline-settings"
ROLLBACK_SCENARIO = Path(__file__).parents[2] / "sandbox" / "scenarios" / "rollback.yaml"
HOOK_SECRET = "hook-s3cret-for-tests"
LONG_JOB = "PLANT003/CIRCUIT01"  # passes four hours of run time about 30 s in


class WebhookStandIn:
    """A Teams Workflows webhook on loopback that keeps every card posted to it."""

    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/workflows/mlbot", self._post)
        self._runner, base = await serve_app(app)
        self.url = f"{base}/workflows/mlbot"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _post(self, request: web.Request) -> web.Response:
        self.posts.append(await request.json())
        return web.Response(status=202)

    def texts(self) -> list[str]:
        return [json.dumps(post, ensure_ascii=False) for post in self.posts]


@pytest.fixture
async def webhook() -> AsyncIterator[WebhookStandIn]:
    stand_in = WebhookStandIn()
    await stand_in.start()
    yield stand_in
    await stand_in.stop()


async def change_group(bot: SandboxBot, **variables: str) -> None:
    """Edit the group in the emulated Azure DevOps; the bot re-reads it as it would."""
    bot.stack.devops.set_variables(GROUP, variables)
    refresher = bot.runtime.refresher
    assert refresher is not None
    await refresher.refresh_once()
    assert refresher.last_error is None and refresher.problems == ()


async def play_training(bot: SandboxBot, seconds: float, step: float = 15.0) -> None:
    """Move the sandbox on; the engine and the delivery run whenever they are due."""
    engine = bot.runtime.engine
    assert engine is not None
    end = bot.clock.now().timestamp() + seconds
    while bot.clock.now().timestamp() < end:
        now = bot.clock.advance(step)
        bot.stack.tick(now)
        if now >= await engine.next_wakeup():
            await engine.tick()
        await bot.runtime.dispatcher.dispatch_pending()


def reminders_of(bot: SandboxBot, circuit: str) -> list[Any]:
    return [m for m in bot.stack.smtp.messages if circuit in m.subject]


async def test_new_recipients_get_the_next_reminder(start_sandbox_bot: StartSandboxBot) -> None:
    bot = await start_sandbox_bot()
    await change_group(bot)  # the running bot has read the scenario's group once
    assert bot.runtime.settings_source().ml_engineers_email == ("ml-engineers@example.com",)

    await change_group(bot, mlEngineersEmail="ada@example.com, grace@example.com")
    await play_training(bot, 120)

    reminders = reminders_of(bot, LONG_JOB)
    assert len(reminders) == 1, [m.subject for m in bot.stack.smtp.messages]
    assert reminders[0].rcpt_to == ("ada@example.com", "grace@example.com")
    assert "ada@example.com" in reminders[0].to and "grace@example.com" in reminders[0].to


async def test_a_webhook_url_set_in_the_group_receives_the_cards(
    start_sandbox_bot: StartSandboxBot, webhook: WebhookStandIn
) -> None:
    bot = await start_sandbox_bot()
    await change_group(bot)
    await play_training(bot, 15)
    assert webhook.posts == []  # the scenario's group has no webhook

    await change_group(bot, teamsWebhookUrl=webhook.url)
    await play_training(bot, 120)

    assert any(LONG_JOB in text for text in webhook.texts()), webhook.texts()
    assert all(post["type"] == "message" for post in webhook.posts)
    # `config` names where the URL comes from, and never shows it (it is a secret).
    live = bot.runtime.live
    report = settings_report(live.now(), {}, group_fields=live.group_fields(), env_file=None)
    rows = {name: (shown, source) for name, shown, source in report}
    assert rows["MLBOT_TEAMS_WEBHOOK_URL"] == ("********", f"variable group {GROUP}")


async def test_thresholds_changed_in_the_group_decide_the_running_watch(
    start_sandbox_bot: StartSandboxBot, connector: ConnectorStandIn
) -> None:
    bot = await start_sandbox_bot(
        {"MLBOT_DEVOPS_HOOK_SECRET": HOOK_SECRET}, scenario=ROLLBACK_SCENARIO
    )
    bot.stack.service_hooks.subscribe(f"{bot.url}/api/hooks/devops?key={HOOK_SECRET}")
    async with bot.session.post(
        f"{bot.url}/api/messages", json=bot_added_to_team(connector.url)
    ) as response:
        assert response.status == 201
    watcher = bot.runtime.watcher
    assert watcher is not None

    def rollbacks() -> list[dict[str, Any]]:
        runs = bot.stack.state()["pipeline_runs"]
        return [r for r in runs if r["pipeline"] == "rollback-pipeline"]

    async def play(seconds: float, until: Callable[[], bool] | None = None) -> None:
        end = bot.clock.now().timestamp() + seconds
        while bot.clock.now().timestamp() < end:
            now = bot.clock.advance(15)
            bot.stack.tick(now)
            await bot.stack.service_hooks.drain()
            due = await watcher.next_due_at()
            if due is not None and due <= now:
                await watcher.tick()
            await bot.runtime.dispatcher.dispatch_pending()
            if until is not None and until():
                return

    # Prod degrades to 12 % errors and 2600 ms from minute 4: within these thresholds.
    await change_group(bot, autoRollbackErrorThreshold="50%", autoRollbackLatencyThreshold="5000ms")
    await play(11 * 60)
    assert await watcher.next_due_at() is not None  # the deployment is being watched
    assert rollbacks() == []

    # Back to the documented thresholds: the same watch now finds prod unhealthy.
    await change_group(bot, autoRollbackErrorThreshold="5%", autoRollbackLatencyThreshold="2000ms")
    await play(10 * 60, until=lambda: bool(rollbacks()))
    assert len(rollbacks()) == 1
    assert "error rate" in rollbacks()[0]["parameters"]["reason"]
