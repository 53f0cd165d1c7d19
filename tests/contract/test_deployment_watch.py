"""The deployment health watch end to end: the real Azure Monitor and Azure DevOps SDKs
against their HTTPS / HTTP emulators, a real migrated store, and a hand-driven clock.

A prod deployment completes at 10:00; the watch checks each minute the interval that
ended two minutes earlier (Azure publishes metrics late), so traffic that degrades at
10:05 fails its first check at 10:08 and the third at 10:10, and the rollback is queued
after the two-minute grace at 10:12.
"""

from __future__ import annotations

import asyncio
import os
import tempfile

os.environ.setdefault("AZURE_DEVOPS_CACHE_DIR", tempfile.mkdtemp(prefix="mlbot-ado-cache-"))

import datetime as dt
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from cards.events import HEALTH_KINDS, event_summary, render_event_card
from monitoring.azure_calls import RetryPolicy
from monitoring.deployment_watch import (
    CancelOutcome,
    DeploymentWatcher,
    EventKind,
    environments_from_settings,
    watch_key,
)
from monitoring.devops import AzureDevOpsPipelines
from monitoring.health import HealthPolicy, parse_common_alert
from monitoring.metrics import EndpointMetrics, MetricsOptions, online_endpoint_id
from monitoring.pipeline_runs import PipelineRuns
from sandbox.clock import ManualClock
from sandbox.credentials import StaticTokenCredential
from sandbox.devops_emulator import DevOpsEmulator
from sandbox.metrics_emulator import FaultKind, MetricsEmulator, TrafficPhase
from store.database import Database
from store.deployment_watches import DeploymentWatchStore
from store.monitoring import EventRecord, MonitoringStore
from store.pipeline_intents import PipelineIntentStore
from tests.conftest import make_settings

START = dt.datetime(2025, 3, 1, 10, 0, tzinfo=dt.UTC)
ENDPOINT = online_endpoint_id(
    "00000000-1111-2222-3333-444444444444", "rg-mlops", "ws-plant", "churn-prod"
)
OTHER_ENDPOINT = online_endpoint_id(
    "00000000-1111-2222-3333-444444444444", "rg-mlops", "ws-plant", "fraud-prod"
)
PAT = "test-pat-123"
DEGRADING = [
    TrafficPhase.healthy(5, requests_per_minute=120, error_percent=0.5, latency_p95_ms=180),
    TrafficPhase.degraded(error_percent=20, latency_p95_ms=2600, requests_per_minute=120),
]
HEALTHY = [TrafficPhase.healthy(None, requests_per_minute=120, latency_p95_ms=180)]
KEY = watch_key("prod", ENDPOINT, "blue", "4242")


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
async def metrics_emulator(clock: ManualClock) -> AsyncIterator[MetricsEmulator]:
    emu = MetricsEmulator(clock)
    await emu.start()
    try:
        yield emu
    finally:
        await emu.stop()


@pytest.fixture
async def devops() -> AsyncIterator[DevOpsEmulator]:
    emu = DevOpsEmulator(pat=PAT)
    await emu.start()
    try:
        yield emu
    finally:
        await emu.stop()


async def _no_sleep(seconds: float) -> None:
    return None


@pytest.fixture
def metrics(metrics_emulator: MetricsEmulator) -> Iterator[EndpointMetrics]:
    # One attempt per check: a failed query is the watch's business (inconclusive).
    options = MetricsOptions(
        retry=RetryPolicy(attempts=1, base_delay_s=0.001, timeout_s=10.0),
        endpoint=metrics_emulator.base_url,
        connection_verify=metrics_emulator.ca_path,
    )
    adapter = EndpointMetrics(StaticTokenCredential, options, sleep=_no_sleep)
    yield adapter
    adapter.close()


@pytest.fixture
def pipelines(devops: DevOpsEmulator) -> AzureDevOpsPipelines:
    return AzureDevOpsPipelines(
        devops.org_url,
        "mlops",
        pat=PAT,
        policy=RetryPolicy(attempts=1, base_delay_s=0.01, timeout_s=5.0),
        sleep=_no_sleep,
    )


@dataclass
class Harness:
    clock: ManualClock
    database: Database
    metrics: EndpointMetrics
    pipelines: AzureDevOpsPipelines
    devops: DevOpsEmulator
    emulator: MetricsEmulator
    minute: int = 0

    def watcher(self, **overrides: Any) -> DeploymentWatcher:
        """A fresh watcher on the same store: what a restarted bot builds."""
        settings = make_settings()
        values: dict[str, Any] = {
            "store": DeploymentWatchStore(self.database),
            "metrics": self.metrics,
            "runs": PipelineRuns(
                self.pipelines, PipelineIntentStore(self.database), self.clock.now
            ),
            "events": MonitoringStore(self.database),
            "policy": lambda: HealthPolicy.from_settings(settings),
            "clock": self.clock.now,
            "rollback_pipeline": lambda: "rollback-pipeline",
            "dry_run": False,
            "grace": dt.timedelta(minutes=2),
            "enabled_for": environments_from_settings(settings),
        }
        values.update(overrides)
        return DeploymentWatcher(**values)

    async def run_until(self, watcher: DeploymentWatcher, minute: int) -> None:
        """Tick once a minute, as the scheduler would, up to `minute` after 10:00."""
        while self.minute < minute:
            self.minute += 1
            self.clock.advance(60)
            await watcher.tick()

    async def events(self, kind: EventKind) -> list[EventRecord]:
        return await MonitoringStore(self.database).events_of_kind(kind.value)

    def rollback_runs(self) -> list[Any]:
        return self.devops.runs_of("rollback-pipeline")


@pytest.fixture
def harness(
    clock: ManualClock,
    database: Database,
    metrics: EndpointMetrics,
    pipelines: AzureDevOpsPipelines,
    devops: DevOpsEmulator,
    metrics_emulator: MetricsEmulator,
) -> Harness:
    return Harness(clock, database, metrics, pipelines, devops, metrics_emulator)


Start = Callable[..., Any]


async def test_degrading_prod_deployment_is_rolled_back_once_after_the_grace(
    harness: Harness,
) -> None:
    harness.emulator.set_traffic(ENDPOINT, DEGRADING)
    watcher = harness.watcher()
    watch = await watcher.start("prod", ENDPOINT, "blue", "4242")
    assert watch is not None and watch.key == KEY

    await harness.run_until(watcher, 9)  # two failed checks: not yet
    assert await harness.events(EventKind.ROLLBACK_PENDING) == []

    await harness.run_until(watcher, 10)  # the third in a row
    [pending] = await harness.events(EventKind.ROLLBACK_PENDING)
    payload = pending.payload
    assert (payload["environment"], payload["endpoint"], payload["deployment"]) == (
        "prod",
        "churn-prod",
        "blue",
    )
    assert payload["watch_key"] == KEY
    assert len(payload["checks"]) == 3
    for check in payload["checks"]:
        assert check["error_rate_percent"] == pytest.approx(20)
        assert check["latency_ms"] == pytest.approx(2600)
        assert check["breaches"] == ["error_rate", "latency"]
    assert payload["thresholds"]["error_rate_percent"] == 5.0
    assert payload["thresholds"]["latency_ms"] == 2000.0
    chart = payload["points"]
    assert len(chart) >= 8 and chart[0]["latency_ms"] == pytest.approx(180)
    assert chart[-1]["error_rate_percent"] == pytest.approx(20)
    assert harness.rollback_runs() == []  # the grace period lets an approver cancel

    await harness.run_until(watcher, 11)
    assert harness.rollback_runs() == []
    await harness.run_until(watcher, 12)
    [run] = harness.rollback_runs()
    assert run.template_parameters["environment"] == "prod"
    assert run.template_parameters["endpoint"] == "churn-prod"
    assert run.template_parameters["deployment"] == "blue"
    assert "3 failed health checks" in run.template_parameters["reason"]
    assert "20 % > 5 %" in run.template_parameters["reason"]
    [queued] = await harness.events(EventKind.ROLLBACK_QUEUED)
    assert queued.payload["run_id"] == run.id
    assert queued.payload["web_url"].startswith(harness.devops.org_url)

    await harness.run_until(watcher, 40)  # still degraded: nothing more happens
    assert len(harness.rollback_runs()) == 1
    stored = await DeploymentWatchStore(harness.database).get(KEY)
    assert stored is not None and stored.status == "rolled_back"
    assert stored.rollback_run_id == run.id


async def test_healthy_deployment_ends_healthy_without_rollback(harness: Harness) -> None:
    harness.emulator.set_traffic(ENDPOINT, HEALTHY)
    watcher = harness.watcher()
    await watcher.start("prod", ENDPOINT, "blue", "4242")

    await harness.run_until(watcher, 31)
    assert await harness.events(EventKind.DEPLOYMENT_HEALTHY) == []
    await harness.run_until(watcher, 32)  # the check of 10:29-10:30 closes the window

    [healthy] = await harness.events(EventKind.DEPLOYMENT_HEALTHY)
    assert healthy.payload["failed_checks"] == 0
    assert healthy.payload["checks"] == 30
    await harness.run_until(watcher, 40)
    assert harness.rollback_runs() == []
    assert await harness.events(EventKind.ROLLBACK_PENDING) == []
    assert await DeploymentWatchStore(harness.database).due(harness.clock.now()) == []


async def test_dry_run_tells_but_queues_nothing(harness: Harness) -> None:
    harness.emulator.set_traffic(ENDPOINT, DEGRADING)
    watcher = harness.watcher(dry_run=True)
    await watcher.start("prod", ENDPOINT, "blue", "4242")

    await harness.run_until(watcher, 15)

    assert len(await harness.events(EventKind.ROLLBACK_PENDING)) == 1
    [dry] = await harness.events(EventKind.ROLLBACK_DRY_RUN)
    assert dry.payload["template_parameters"]["endpoint"] == "churn-prod"
    assert harness.rollback_runs() == []
    assert harness.devops.requests_to("/runs", "POST") == []


async def test_cancel_during_the_grace_queues_nothing(harness: Harness) -> None:
    harness.emulator.set_traffic(ENDPOINT, DEGRADING)
    watcher = harness.watcher()
    await watcher.start("prod", ENDPOINT, "blue", "4242")
    await harness.run_until(watcher, 11)

    assert await watcher.cancel_rollback(KEY, "Ada Lovelace") is CancelOutcome.CANCELLED
    assert await watcher.cancel_rollback(KEY, "Ada Lovelace") is CancelOutcome.NOT_PENDING
    await harness.run_until(watcher, 20)

    assert harness.rollback_runs() == []
    [cancelled] = await harness.events(EventKind.ROLLBACK_CANCELLED)
    assert cancelled.payload["cancelled_by"] == "Ada Lovelace"
    assert await watcher.cancel_rollback("prod/none/blue/1", "Ada") is CancelOutcome.NOT_FOUND


async def test_cancel_after_the_rollback_was_queued_is_too_late(harness: Harness) -> None:
    harness.emulator.set_traffic(ENDPOINT, DEGRADING)
    watcher = harness.watcher()
    await watcher.start("prod", ENDPOINT, "blue", "4242")
    await harness.run_until(watcher, 12)
    assert await watcher.cancel_rollback(KEY, "Ada") is CancelOutcome.TOO_LATE
    assert len(harness.rollback_runs()) == 1


async def test_zero_grace_queues_at_the_third_failure(harness: Harness) -> None:
    harness.emulator.set_traffic(ENDPOINT, DEGRADING)
    watcher = harness.watcher(grace=dt.timedelta(0))
    await watcher.start("prod", ENDPOINT, "blue", "4242")
    await harness.run_until(watcher, 10)
    assert len(harness.rollback_runs()) == 1


async def test_four_metrics_errors_alert_humans(harness: Harness) -> None:
    harness.emulator.set_traffic(ENDPOINT, HEALTHY)
    watcher = harness.watcher()
    await watcher.start("prod", ENDPOINT, "blue", "4242")
    await harness.run_until(watcher, 2)  # checks of minutes before the deployment
    harness.emulator.inject(FaultKind.SERVER_ERROR, count=4)

    await harness.run_until(watcher, 5)
    assert await harness.events(EventKind.HEALTH_INCONCLUSIVE) == []
    await harness.run_until(watcher, 6)

    [alert] = await harness.events(EventKind.HEALTH_INCONCLUSIVE)
    assert alert.payload["inconclusive_checks"] == 4
    assert "metrics unavailable" in alert.payload["reason"]
    await harness.run_until(watcher, 20)  # measurable again: neither rollback nor repeat
    assert len(await harness.events(EventKind.HEALTH_INCONCLUSIVE)) == 1
    assert harness.rollback_runs() == []


def alert_body(condition: str, at: dt.datetime, target: str = ENDPOINT) -> dict[str, Any]:
    stamp = at.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    return {
        "schemaId": "azureMonitorCommonAlertSchema",
        "data": {
            "essentials": {
                "alertId": "/subscriptions/s/providers/Microsoft.AlertsManagement/alerts/a1",
                "alertRule": "churn-prod 5xx",
                "severity": "Sev1",
                "signalType": "Metric",
                "monitorCondition": condition,
                "alertTargetIDs": [target.lower()],
                "firedDateTime": stamp,
                "resolvedDateTime": stamp if condition == "Resolved" else None,
            },
            "alertContext": {
                "condition": {
                    "allOf": [
                        {
                            "metricName": "RequestsPerMinute",
                            "operator": "GreaterThan",
                            "threshold": "5",
                            "timeAggregation": "Total",
                            "metricValue": 24,
                        }
                    ]
                }
            },
        },
    }


async def test_fired_alerts_on_healthy_traffic_never_fail_a_check(harness: Harness) -> None:
    harness.emulator.set_traffic(ENDPOINT, HEALTHY)
    watcher = harness.watcher()
    await watcher.start("prod", ENDPOINT, "blue", "4242")
    for _ in range(3):
        await harness.run_until(watcher, harness.minute + 1)
        harness.clock.advance(30)
        fired = parse_common_alert(alert_body("Fired", harness.clock.now()))
        assert await watcher.on_alert(fired) == 1
    assert await harness.events(EventKind.ROLLBACK_PENDING) == []
    stored = await DeploymentWatchStore(harness.database).get(KEY)
    assert stored is not None and stored.status == "watching"
    assert stored.state["recent"], "the watch has judged minutes"
    assert {check["source"] for check in stored.state["recent"]} == {"metrics"}
    assert all(check["status"] != "failed" for check in stored.state["recent"])


async def test_an_alert_makes_the_watch_check_the_metrics_now(harness: Harness) -> None:
    harness.emulator.set_traffic(ENDPOINT, DEGRADING)
    watcher = harness.watcher()
    await watcher.start("prod", ENDPOINT, "blue", "4242")
    await harness.run_until(watcher, 9)  # two failed checks
    harness.clock.advance(60)  # 10:10, before the timer's tick

    other = parse_common_alert(alert_body("Fired", harness.clock.now(), OTHER_ENDPOINT))
    assert await watcher.on_alert(other) == 0
    assert await harness.events(EventKind.ROLLBACK_PENDING) == []
    # Even a Resolved alert is only a reason to look: the metrics say the third failure.
    resolved = parse_common_alert(alert_body("Resolved", harness.clock.now()))
    assert await watcher.on_alert(resolved) == 1
    [pending] = await harness.events(EventKind.ROLLBACK_PENDING)
    assert len(pending.payload["checks"]) == 3
    assert {check["source"] for check in pending.payload["checks"]} == {"metrics"}


async def test_a_restart_keeps_the_streak_and_never_queues_twice(harness: Harness) -> None:
    harness.emulator.set_traffic(ENDPOINT, DEGRADING)
    first = harness.watcher()
    await first.start("prod", ENDPOINT, "blue", "4242")
    await harness.run_until(first, 9)  # two failures, then the bot restarts

    second = harness.watcher()
    # The deployment hook redelivered after the restart finds the same watch.
    again = await second.start("prod", ENDPOINT, "blue", "4242")
    assert again is not None and again.state["consecutive_failures"] == 2
    await harness.run_until(second, 10)  # the third failure, counted across the restart
    assert len(await harness.events(EventKind.ROLLBACK_PENDING)) == 1

    third = harness.watcher()  # restarted again during the grace
    await harness.run_until(third, 12)
    await third.tick()
    fourth = harness.watcher()
    await harness.run_until(fourth, 20)
    await first.tick()  # a stale process ticking too changes nothing

    assert len(harness.rollback_runs()) == 1
    assert len(await harness.events(EventKind.ROLLBACK_PENDING)) == 1
    assert len(await harness.events(EventKind.ROLLBACK_QUEUED)) == 1


async def test_no_second_rollback_while_one_is_in_progress(harness: Harness) -> None:
    harness.emulator.set_traffic(ENDPOINT, DEGRADING)
    harness.emulator.set_traffic(OTHER_ENDPOINT, DEGRADING, deployment="green")
    watcher = harness.watcher()
    await watcher.start("prod", ENDPOINT, "blue", "4242")
    await watcher.start("prod", OTHER_ENDPOINT, "green", "4243")

    await harness.run_until(watcher, 20)

    assert len(harness.rollback_runs()) == 1
    assert len(await harness.events(EventKind.ROLLBACK_PENDING)) == 1
    [skipped] = await harness.events(EventKind.ROLLBACK_SKIPPED)
    assert skipped.payload["endpoint"] == "fraud-prod"


async def test_only_auto_rollback_environments_are_watched(harness: Harness) -> None:
    harness.emulator.set_traffic(ENDPOINT, DEGRADING)
    watcher = harness.watcher()
    assert await watcher.start("dev", ENDPOINT, "blue", "4242") is None
    assert await watcher.start("PROD", ENDPOINT, "blue", "4242") is not None
    disabled = harness.watcher(
        enabled_for=environments_from_settings(make_settings(MLBOT_AUTO_ROLLBACK_ENABLED="false"))
    )
    assert await disabled.start("prod", ENDPOINT, "blue", "9") is None
    await harness.run_until(watcher, 15)
    assert len(harness.rollback_runs()) == 1


async def test_no_devops_configured_describes_the_rollback(harness: Harness) -> None:
    harness.emulator.set_traffic(ENDPOINT, DEGRADING)
    watcher = harness.watcher(runs=None)
    await watcher.start("prod", ENDPOINT, "blue", "4242")
    await harness.run_until(watcher, 13)
    [dry] = await harness.events(EventKind.ROLLBACK_DRY_RUN)
    assert dry.payload["why"] == "Azure DevOps is not configured"
    assert harness.rollback_runs() == []


async def test_every_event_the_watch_records_renders_in_both_card_versions(
    harness: Harness,
) -> None:
    harness.emulator.set_traffic(ENDPOINT, DEGRADING)
    harness.emulator.set_traffic(OTHER_ENDPOINT, DEGRADING, deployment="green")
    watcher = harness.watcher()
    await watcher.start("prod", ENDPOINT, "blue", "4242")
    await watcher.start("prod", OTHER_ENDPOINT, "green", "4243")
    await harness.run_until(watcher, 20)
    recorded = await MonitoringStore(harness.database).events()
    kinds = {event.kind for event in recorded}
    assert {"rollback_pending", "rollback_queued", "rollback_skipped"} <= kinds <= HEALTH_KINDS
    for event in recorded:
        for version in ("1.4", "1.5"):
            card = render_event_card(event, version=version)
            assert card["body"][0]["weight"] == "Bolder"
            assert "style" not in card["body"][0] or version == "1.5"
        assert "churn-prod" in event_summary(event) or "fraud-prod" in event_summary(event)
    pending = next(e for e in recorded if e.kind == "rollback_pending")
    card = render_event_card(pending)
    content = str(card)
    assert "error rate > 5 %" in content and "P95 latency > 2000 ms" in content
    assert "20 % > 5 %" in content and "▁" in content and "█" in content


async def test_a_rollback_whose_post_timed_out_is_not_failed_and_runs_once(
    harness: Harness,
) -> None:
    harness.emulator.set_traffic(ENDPOINT, DEGRADING)
    impatient = AzureDevOpsPipelines(
        harness.devops.org_url,
        "mlops",
        pat=PAT,
        policy=RetryPolicy(attempts=1, base_delay_s=0.01, timeout_s=0.3),
        sleep=_no_sleep,
    )
    watcher = harness.watcher(
        runs=PipelineRuns(impatient, PipelineIntentStore(harness.database), harness.clock.now)
    )
    await watcher.start("prod", ENDPOINT, "blue", "4242")
    await harness.run_until(watcher, 11)
    # Azure DevOps holds the rollback's POST past mlbot's patience, then queues the run.
    harness.devops.inject_fault("slow", path_contains="/runs", method="POST", delay_s=1.0)

    await harness.run_until(watcher, 12)  # the POST times out
    await harness.run_until(watcher, 13)  # looked for, not there yet: nothing posted again
    assert await harness.events(EventKind.ROLLBACK_FAILED) == []
    stored = await DeploymentWatchStore(harness.database).get(KEY)
    assert stored is not None and stored.status == "queuing"

    for _ in range(300):  # the held POST creates its run on the emulator's own time
        if harness.rollback_runs():
            break
        await asyncio.sleep(0.02)
    await harness.run_until(watcher, 20)

    [run] = harness.rollback_runs()
    [queued] = await harness.events(EventKind.ROLLBACK_QUEUED)
    assert queued.payload["run_id"] == run.id
    assert await harness.events(EventKind.ROLLBACK_FAILED) == []
    stored = await DeploymentWatchStore(harness.database).get(KEY)
    assert stored is not None and stored.status == "rolled_back"
    assert stored.rollback_run_id == run.id
