"""From an Azure ML state change to a card in Teams and on the Workflows webhook.

The sandbox emulates Azure; the bot runs over real HTTP; the Bot Connector and the
webhook are local stand-ins that record what they receive.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from app import Runtime
from domain.destinations import WEBHOOK
from sandbox.clock import ManualClock
from sandbox.scenario import DEFAULT_SCENARIO_PATH
from sandbox.stack import SandboxStack
from tests.conftest import StartSandboxBot, serve_app
from tests.standins.connector import ConnectorStandIn
from tests.teams_payloads import CHANNEL_ID, bot_added_to_team

START = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
HOOK_SECRET = "hook-secret-for-tests"


class WebhookStandIn:
    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.replies: list[tuple[int, dict[str, str]]] = []  # scripted, then 202
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        async def receive(request: web.Request) -> web.Response:
            status, headers = self.replies.pop(0) if self.replies else (202, {})
            if status < 300:
                self.bodies.append(await request.json())
            return web.Response(status=status, headers=headers)

        app = web.Application()
        app.router.add_post("/workflows/hook", receive)
        self._runner, base = await serve_app(app)
        self.url = f"{base}/workflows/hook"

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()


@dataclass
class Harness:
    runtime: Runtime
    stack: SandboxStack
    clock: ManualClock
    url: str
    session: aiohttp.ClientSession
    webhook: WebhookStandIn

    async def play(self, seconds: float, step: float = 15.0) -> None:
        assert self.runtime.engine is not None
        end = self.clock.now().timestamp() + seconds
        while self.clock.now().timestamp() < end:
            now = self.clock.advance(step)
            self.stack.tick(now)
            if now >= await self.runtime.engine.next_wakeup():
                await self.runtime.engine.tick()
            await self.runtime.dispatcher.dispatch_pending()


@pytest.fixture
async def harness(start_sandbox_bot: StartSandboxBot) -> AsyncIterator[Harness]:
    webhook = WebhookStandIn()
    await webhook.start()
    bot = await start_sandbox_bot(
        {"MLBOT_TEAMS_WEBHOOK_URL": webhook.url, "MLBOT_EVENTGRID_HOOK_SECRET": HOOK_SECRET}
    )
    yield Harness(bot.runtime, bot.stack, bot.clock, bot.url, bot.session, webhook)
    await webhook.stop()


async def test_failures_and_retries_reach_the_channel_and_the_webhook(
    harness: Harness, connector: ConnectorStandIn
) -> None:
    async with harness.session.post(
        f"{harness.url}/api/messages", json=bot_added_to_team(connector.url)
    ) as response:
        assert response.status == 201
    await connector.wait_for(1)  # the welcome card

    await harness.play(10 * 60)

    cards = connector.cards()[1:]
    posted = " ".join(str(card) for card in cards)
    assert all(call.path.startswith(f"/v3/conversations/{CHANNEL_ID}") for call in connector.calls)
    assert "PLANT002/CIRCUIT03" in posted and "Retries exhausted" in posted
    assert "CUDA out of memory" in posted
    assert "PLANT001/CIRCUIT01" in posted  # its completion
    # "Started" is not in the default subscription.
    assert not any("▶️" in str(card.get("body", [{}])[0]) for card in cards)
    # Each event reached the channel exactly once.
    keys = [e.key for e in await harness.runtime.monitoring.events(limit=500)]
    delivered = [d for d in keys if d]
    assert len(delivered) == len(set(delivered))

    # The webhook got version 1.4 cards in the Workflows envelope.
    assert harness.webhook.bodies
    for body in harness.webhook.bodies:
        assert body["type"] == "message"
        attachment = body["attachments"][0]
        assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
        assert attachment["content"]["version"] == "1.4"


async def test_webhook_throttling_is_retried_not_lost(harness: Harness) -> None:
    harness.webhook.replies = [(429, {"Retry-After": "20"}), (503, {})]
    await harness.play(3 * 60)
    deliveries = harness.runtime.deliveries
    events = await harness.runtime.monitoring.events(limit=500)
    webhook_kinds = {e.kind for e in events if e.kind != "training_started"}
    assert webhook_kinds, "the first minutes produce events for the webhook"
    records = [(await deliveries.for_event(e.id)).get(WEBHOOK) for e in events]
    sent = [r for r in records if r is not None and r.status == "sent"]
    assert len(sent) == len(harness.webhook.bodies)
    assert any(r is not None and r.attempts >= 2 and r.status == "sent" for r in records)
    assert await deliveries.stuck() == []


async def test_event_grid_handshake_and_push(harness: Harness) -> None:
    url = f"{harness.url}/api/hooks/eventgrid"
    validation = [
        {
            "id": "1",
            "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent",
            "data": {"validationCode": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"},
        }
    ]
    async with harness.session.post(url, json=validation) as response:
        assert response.status == 401  # no key
    async with harness.session.post(url, params={"key": "wrong"}, json=validation) as response:
        assert response.status == 401
    async with harness.session.post(url, params={"key": HOOK_SECRET}, json=validation) as r:
        assert r.status == 200
        assert await r.json() == {"validationResponse": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"}
    async with harness.session.post(url, params={"key": HOOK_SECRET}, data=b"{oops") as r:
        assert r.status == 400

    await harness.play(5 * 60)
    engine = harness.runtime.engine
    assert engine is not None
    assert await engine.next_wakeup() > harness.clock.now()
    workspace = harness.stack.endpoints.workspaces[0]
    topic = (
        f"/subscriptions/{workspace.subscription_id}/resourceGroups/{workspace.resource_group}"
        f"/providers/Microsoft.MachineLearningServices/workspaces/{workspace.name}"
    )
    job = harness.stack.state()["jobs"][0]
    event = [
        {
            "id": "2",
            "topic": topic,
            "subject": f"experiments/x/runs/{job['name']}",
            "eventType": "Microsoft.MachineLearningServices.RunStatusChanged",
            "eventTime": harness.clock.now().isoformat(),
            "data": {"runId": job["name"], "runStatus": "Failed"},
        }
    ]
    async with harness.session.post(url, params={"key": HOOK_SECRET}, json=event) as r:
        assert r.status == 200 and (await r.json())["accepted"] == 1
    # The affected session checks at the next tick instead of waiting out its backoff.
    assert await engine.next_wakeup() <= harness.clock.now()


async def test_event_grid_push_with_a_lower_cased_topic_reaches_the_session(
    start_sandbox_bot: StartSandboxBot, tmp_path: Path
) -> None:
    # ARM ids are case-insensitive and Azure lower-cases them in places: a workspace
    # configured as "RG-MLOps-Sandbox" may be pushed as "rg-mlops-sandbox".
    scenario = tmp_path / "mixed-case.yaml"
    scenario.write_text(
        DEFAULT_SCENARIO_PATH.read_text()
        .replace("rg-mlops-sandbox", "RG-MLOps-Sandbox")
        .replace("mlw-plants-sandbox", "MLW-Plants-Sandbox")
    )
    bot = await start_sandbox_bot({"MLBOT_HOOK_SECRET": HOOK_SECRET}, scenario=scenario)
    harness = Harness(bot.runtime, bot.stack, bot.clock, bot.url, bot.session, WebhookStandIn())
    await harness.play(5 * 60)
    engine = harness.runtime.engine
    assert engine is not None
    assert await engine.next_wakeup() > harness.clock.now()
    workspace = harness.stack.endpoints.workspaces[0]
    assert workspace.resource_group == "RG-MLOps-Sandbox"
    topic = (
        f"/subscriptions/{workspace.subscription_id}/resourcegroups/{workspace.resource_group}"
        f"/providers/microsoft.machinelearningservices/workspaces/{workspace.name}"
    ).lower()
    job = harness.stack.state()["jobs"][0]
    event = [
        {
            "id": "3",
            "topic": topic,
            "subject": f"experiments/x/runs/{job['name']}",
            "eventType": "Microsoft.MachineLearningServices.RunStatusChanged",
            "eventTime": harness.clock.now().isoformat(),
            "data": {"runId": job["name"], "runStatus": "Failed"},
        }
    ]
    url = f"{harness.url}/api/hooks/eventgrid"
    async with harness.session.post(url, params={"key": HOOK_SECRET}, json=event) as r:
        assert r.status == 200 and (await r.json())["accepted"] == 1
    assert await engine.next_wakeup() <= harness.clock.now()
