"""Automatic rollback in `mlbot serve` terms: the sandbox's rollback scenario end to end.

The bot runs over real HTTP with the sandbox emulators on a manual clock. The emulated
Azure DevOps deploys to prod and posts its stage hook to `/api/hooks/devops`; the bot
starts the health watch, reads the endpoint's metrics from the Azure Monitor emulator
through the real SDK, and queues `rollback-pipeline` in the Azure DevOps emulator. What
users see arrives at the connector stand-in.

Timeline (simulated): the deployment finishes at 65 s; traffic degrades at 4:05; the
watch judges each minute two minutes late, so the third failed check is at about 9:10,
and the rollback is queued after the two-minute grace.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from app import Runtime
from sandbox.clock import ManualClock
from sandbox.stack import SandboxStack
from tests.conftest import SandboxBot, StartSandboxBot
from tests.standins.connector import ConnectorStandIn
from tests.teams_payloads import bot_added_to_team, card_action, channel_message

ROLLBACK_SCENARIO = Path(__file__).parents[2] / "sandbox" / "scenarios" / "rollback.yaml"
HOOK_SECRET = "hook-s3cret-for-tests"
ALERTS_SECRET = "alerts-s3cret-for-tests"
APPROVER = {"id": "29:approver", "name": "Grace Hopper", "aadObjectId": "aad-approver-1"}
ALERTS = "/subscriptions/s/providers/Microsoft.AlertsManagement/alerts"
VIEWER = {"id": "29:viewer", "name": "Vic Viewer", "aadObjectId": "aad-viewer-1"}


@dataclass
class Prod:
    bot: SandboxBot
    connector: ConnectorStandIn

    @property
    def runtime(self) -> Runtime:
        return self.bot.runtime

    @property
    def stack(self) -> SandboxStack:
        return self.bot.stack

    @property
    def clock(self) -> ManualClock:
        return self.bot.clock

    async def play(
        self, seconds: float, step: float = 15.0, until: Callable[[], bool] | None = None
    ) -> None:
        """Move simulated time on; the watch and the deliveries run as the scheduler would."""
        watcher = self.runtime.watcher
        assert watcher is not None
        end = self.clock.now().timestamp() + seconds
        while self.clock.now().timestamp() < end:
            now = self.clock.advance(step)
            self.stack.tick(now)
            await self.stack.service_hooks.drain()
            due = await watcher.next_due_at()
            if due is not None and due <= now:
                await watcher.tick()
            await self.runtime.dispatcher.dispatch_pending()
            if until is not None and until():
                return

    def runs(self, pipeline: str) -> list[dict[str, Any]]:
        return [r for r in self.stack.state()["pipeline_runs"] if r["pipeline"] == pipeline]

    def cards(self) -> list[dict[str, Any]]:
        return self.connector.cards()

    def cards_with(self, text: str) -> list[dict[str, Any]]:
        return [card for card in self.cards() if text in json.dumps(card, ensure_ascii=False)]

    async def say(self, text: str, user: dict[str, Any]) -> dict[str, Any]:
        activity = channel_message(f"<at>mlbot</at> {text}", self.connector.url)
        activity["from"] = user
        before = len(self.connector.calls)
        async with self.bot.session.post(f"{self.bot.url}/api/messages", json=activity) as response:
            assert response.status == 201
        calls = await self.connector.wait_for(before + 1)
        return calls[before].body

    async def press(
        self, action: dict[str, Any], user: dict[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        activity = card_action(action["verb"], action["data"], self.connector.url, user=user)
        async with self.bot.session.post(f"{self.bot.url}/api/messages", json=activity) as response:
            return response.status, await response.json()


def execute_actions(card: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        action["verb"]: action
        for action in card.get("actions", [])
        if action.get("type") == "Action.Execute"
    }


@pytest.fixture
def start_prod(
    start_sandbox_bot: StartSandboxBot, connector: ConnectorStandIn
) -> Callable[..., Any]:
    async def start(scenario: Path = ROLLBACK_SCENARIO, **settings: str) -> Prod:
        bot = await start_sandbox_bot(
            {
                "MLBOT_DEVOPS_HOOK_SECRET": HOOK_SECRET,
                "MLBOT_ALERTS_HOOK_SECRET": ALERTS_SECRET,
                "MLBOT_APPROVERS": APPROVER["aadObjectId"],
                "MLBOT_CARD_SIGNING_KEY": "card-signing-key-for-tests-0123456789",
                **settings,
            },
            scenario=scenario,
        )
        bot.stack.service_hooks.subscribe(f"{bot.url}/api/hooks/devops?key={HOOK_SECRET}")
        async with bot.session.post(
            f"{bot.url}/api/messages", json=bot_added_to_team(connector.url)
        ) as response:
            assert response.status == 201
        await connector.wait_for(1)  # the welcome card
        return Prod(bot, connector)

    return start


@pytest.fixture
async def prod(start_prod: Callable[..., Any]) -> AsyncIterator[Prod]:
    yield await start_prod()


async def test_degrading_prod_is_rolled_back_once_with_an_explanatory_card(prod: Prod) -> None:
    await prod.play(90)
    deployed = prod.runs("deployment-pipeline")
    assert [(r["state"], r["result"]) for r in deployed] == [("completed", "succeeded")]
    hooks = prod.stack.state()["service_hooks"]
    assert [(h["stage"], h["status"]) for h in hooks] == [("Deploy_Prod", 200)]
    assert prod.runtime.watcher is not None
    assert await prod.runtime.watcher.next_due_at() is not None  # the watch runs

    await prod.play(14 * 60)
    rollbacks = prod.runs("rollback-pipeline")
    assert len(rollbacks) == 1
    parameters = rollbacks[0]["parameters"]
    assert parameters["environment"] == "prod"
    assert parameters["endpoint"] == "plant-models-prod"
    assert parameters["deployment"] == "green"
    assert "error rate" in parameters["reason"]
    assert rollbacks[0]["state"] == "completed"  # the previous model is back

    # One card explains it: the figures, the thresholds and the chart of the window.
    pending = prod.cards_with("Cancel the rollback")
    assert len(pending) == 1
    explained = json.dumps(pending[0], ensure_ascii=False)
    assert "12" in explained and "5" in explained and "2000" in explained
    assert "plant-models-prod" in explained
    assert len(prod.cards_with("rollback-pipeline")) >= 1  # the queued rollback is told

    # The rollback's own completion starts no watch, and nothing flaps afterwards.
    await prod.play(40 * 60, step=60)
    assert len(prod.runs("rollback-pipeline")) == 1
    assert len(prod.cards_with("Cancel the rollback")) == 1
    stages = [h["stage"] for h in prod.stack.state()["service_hooks"]]
    assert stages == ["Deploy_Prod", "Rollback_Prod"]


async def _until_pending(prod: Prod) -> dict[str, Any]:
    await prod.play(15 * 60, until=lambda: bool(prod.cards_with("Cancel the rollback")))
    cards = prod.cards_with("Cancel the rollback")
    assert len(cards) == 1, "the rollback never became due"
    return execute_actions(cards[0])["rollback.cancel"]


async def test_an_approver_cancels_during_the_grace_period(prod: Prod) -> None:
    cancel = await _until_pending(prod)

    status, body = await prod.press(cancel, VIEWER)
    assert status == 200
    assert "approver" in json.dumps(body)  # refused politely: viewers cannot cancel

    status, body = await prod.press(cancel, APPROVER)
    assert status == 200
    answer = body["value"]
    [title] = [item["text"] for item in answer["body"][:1]]
    # A decision to stop, named with its environment: not a green success tick.
    assert title == "⏹ Automatic rollback of prod cancelled"
    # The evidence the approver decided on stays on the card that replaced the alert.
    shown = json.dumps(answer, ensure_ascii=False)
    assert "Failed checks (UTC)" in shown
    assert "Chart.VerticalBar" in shown and "Chart.Line" in shown
    assert "Grace Hopper" in shown and "aad-approver-1" not in shown  # a name, not an id
    status, body = await prod.press(cancel, APPROVER)  # a second press changes nothing
    assert status == 200

    await prod.play(20 * 60, step=60)
    assert prod.runs("rollback-pipeline") == []
    events = await prod.runtime.monitoring.events(limit=500)
    assert [e.kind for e in events].count("rollback_cancelled") == 1


async def test_dry_run_tells_what_would_happen_and_queues_nothing(
    start_prod: Callable[..., Any],
) -> None:
    prod = await start_prod(MLBOT_AUTO_ROLLBACK_DRY_RUN="true")
    await prod.play(16 * 60)
    assert prod.runs("rollback-pipeline") == []
    kinds = [e.kind for e in await prod.runtime.monitoring.events(limit=500)]
    assert kinds.count("rollback_dry_run") == 1
    assert prod.cards_with("Cancel the rollback") == []  # nothing to cancel in a dry run


async def test_no_grace_queues_at_the_third_failed_check(
    start_prod: Callable[..., Any],
) -> None:
    prod = await start_prod(MLBOT_AUTO_ROLLBACK_GRACE_SECONDS="0")
    await prod.play(15 * 60, until=lambda: bool(prod.runs("rollback-pipeline")))
    assert len(prod.runs("rollback-pipeline")) == 1
    assert prod.cards_with("Cancel the rollback") == []


async def test_environments_without_auto_rollback_are_not_watched(
    start_prod: Callable[..., Any],
) -> None:
    prod = await start_prod(MLBOT_AUTO_ROLLBACK_ENVIRONMENTS="staging")
    await prod.play(16 * 60, step=30)
    assert [h["status"] for h in prod.stack.state()["service_hooks"]] == [200]
    assert prod.runtime.watcher is not None
    assert await prod.runtime.watcher.next_due_at() is None
    assert prod.runs("rollback-pipeline") == []


async def test_azure_monitor_alerts_only_make_the_watch_look(prod: Prod) -> None:
    await prod.play(90)  # deployed, watched; its traffic is still healthy
    targets = prod.stack.endpoints.rollback_targets
    resource_id = targets[0].split("=", 1)[1].split("@", 1)[0].lower()  # Azure lower-cases
    url = f"{prod.bot.url}/api/hooks/alerts?key={ALERTS_SECRET}"
    for number in range(3):
        fired = prod.clock.now() - dt.timedelta(seconds=30)
        body = {
            "schemaId": "azureMonitorCommonAlertSchema",
            "data": {
                "essentials": {
                    "alertId": f"{ALERTS}/{number}",
                    "alertRule": "plant-models-prod 5xx",
                    "severity": "Sev1",
                    "signalType": "Metric",
                    "monitorCondition": "Fired",
                    "alertTargetIDs": [resource_id],
                    "firedDateTime": fired.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                },
                "alertContext": {},
            },
        }
        async with prod.bot.session.post(url, json=body) as response:
            assert response.status == 200
            assert (await response.json())["matched"] == 1
        await prod.play(60, step=60)
    await prod.runtime.dispatcher.dispatch_pending()
    # Healthy traffic stays healthy whatever alerts say: nothing is rolled back.
    assert prod.cards_with("Cancel the rollback") == []
    assert prod.runs("rollback-pipeline") == []

    # Without the secret the alert is refused and changes nothing.
    async with prod.bot.session.post(f"{prod.bot.url}/api/hooks/alerts", json={}) as response:
        assert response.status == 401


async def _manual_rollback(prod: Prod) -> str:
    reply = await prod.say("rollback prod model is misbehaving", APPROVER)
    confirm = execute_actions(reply["attachments"][0]["content"])["rollback.confirm"]
    status, body = await prod.press(confirm, APPROVER)
    assert status == 200
    return json.dumps(body, ensure_ascii=False)


async def test_a_manual_rollback_during_the_grace_replaces_the_automatic_one(
    prod: Prod,
) -> None:
    await _until_pending(prod)
    answer = await _manual_rollback(prod)
    assert "Rollback of prod queued" in answer
    await prod.play(20 * 60, step=60)
    rollbacks = prod.runs("rollback-pipeline")
    assert len(rollbacks) == 1
    assert rollbacks[0]["parameters"]["reason"] == "model is misbehaving"
    events = await prod.runtime.monitoring.events(limit=500)
    cancelled = [e for e in events if e.kind == "rollback_cancelled"]
    assert len(cancelled) == 1
    assert "manual rollback" in cancelled[0].payload["cancelled_by"]


async def test_no_manual_rollback_while_the_automatic_one_runs(
    start_prod: Callable[..., Any],
) -> None:
    prod = await start_prod(MLBOT_AUTO_ROLLBACK_GRACE_SECONDS="0")
    await prod.play(15 * 60, until=lambda: bool(prod.runs("rollback-pipeline")))
    answer = await _manual_rollback(prod)
    assert "already under way" in answer
    assert len(prod.runs("rollback-pipeline")) == 1


def _scenario_with_traffic(tmp_path: Path, traffic: list[dict[str, Any]]) -> Path:
    data = yaml.safe_load(ROLLBACK_SCENARIO.read_text())
    data["endpoints"][0]["traffic"] = traffic
    path = tmp_path / "traffic.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


BAD: dict[str, Any] = {
    "minutes": 1,
    "requests_per_minute": 120,
    "error_percent": 12,
    "latency_p95_ms": 2600,
}
GOOD: dict[str, Any] = {
    "minutes": 1,
    "requests_per_minute": 120,
    "error_percent": 0.5,
    "latency_p95_ms": 180,
}


async def test_flapping_traffic_never_rolls_back(
    start_prod: Callable[..., Any], tmp_path: Path
) -> None:
    # Two bad minutes, one good, for the whole window: never three failures in a row.
    traffic = [BAD, BAD, GOOD] * 12
    prod = await start_prod(_scenario_with_traffic(tmp_path, traffic))
    await prod.play(40 * 60, step=30)
    assert prod.runs("rollback-pipeline") == []
    kinds = [e.kind for e in await prod.runtime.monitoring.events(limit=500)]
    assert "deployment_healthy" in kinds and "rollback_pending" not in kinds


async def test_too_little_traffic_cannot_fail_a_check(
    start_prod: Callable[..., Any], tmp_path: Path
) -> None:
    # Half the requests fail, but ten a minute are too few to judge (minimum 20).
    quiet = {"requests_per_minute": 10, "error_percent": 50, "latency_p95_ms": 180}
    prod = await start_prod(_scenario_with_traffic(tmp_path, [quiet]))
    await prod.play(40 * 60, step=30)
    assert prod.runs("rollback-pipeline") == []
