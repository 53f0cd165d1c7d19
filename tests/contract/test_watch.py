"""`mlbot watch` against the sandbox, through the production adapters.

A fake sleep moves a manual clock and the sandbox with it: hours of training are
watched in moments, and nothing sleeps for real. Everything listens on loopback.
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from config.settings import Settings, settings_from_mapping
from monitoring.azureml import AzureMLJobSource
from monitoring.devops import AzureDevOpsPipelines
from monitoring.engine import EngineConfig
from monitoring.watch import (
    WatchExit,
    WatchOptions,
    WatchOutcome,
    WatchTarget,
    run_watch,
    watch_engine,
)
from sandbox.clock import ManualClock
from sandbox.stack import SandboxStack
from store.monitoring import EventRecord, MonitoringStore
from store.pipeline_intents import PipelineIntentStore
from tests.contract.sandbox_world import WorldFactory

START = datetime(2026, 11, 29, 6, 0, tzinfo=UTC)

SCENARIO = """
name: watch-test
subscription_id: 00000000-0000-0000-0000-0000000000f1
resource_group: rg-watch
experiment: circuit-training
workspaces:
  - name: mlw-watch
    circuits: [PLANT001/CIRCUIT01, PLANT002/CIRCUIT02, PLANT003/CIRCUIT03]
jobs:
  - circuit: PLANT001/CIRCUIT01   # fails on every attempt
    start_after_s: 0
    duration_s: 600
    outcomes: [Failed, Failed, Failed]
    error_message: "UserError: loss became NaN"
  - circuit: PLANT002/CIRCUIT02   # quick success
    start_after_s: 0
    duration_s: 900
  - circuit: PLANT003/CIRCUIT03   # fails once, the retry succeeds
    start_after_s: 0
    duration_s: [300, 1200]
    outcomes: [Failed, Completed]
pipelines:
  training: {name: training-pipeline, circuits_parameter: manualCircuits,
             submit_after_s: 60, finish_after_s: 5}
  deployment: {name: deployment-pipeline, duration_s: 60, result: succeeded}
  rollback: {name: rollback-pipeline, duration_s: 60, result: succeeded}
"""

LONG_SCENARIO = """
name: watch-long
subscription_id: 00000000-0000-0000-0000-0000000000f2
resource_group: rg-watch
experiment: nightly
workspaces:
  - name: mlw-watch
    circuits: [PLANT009/CIRCUIT01]
jobs:
  - circuit: PLANT009/CIRCUIT01   # trains for three hours
    start_after_s: 0
    duration_s: 10800
pipelines:
  training: {name: training-pipeline, circuits_parameter: manualCircuits,
             submit_after_s: 60, finish_after_s: 5}
  deployment: {name: deployment-pipeline, duration_s: 60, result: succeeded}
  rollback: {name: rollback-pipeline, duration_s: 60, result: succeeded}
"""


@dataclass
class Watch:
    stack: SandboxStack
    clock: ManualClock
    store: MonitoringStore
    source: AzureMLJobSource
    pipelines: AzureDevOpsPipelines
    intents: PipelineIntentStore
    notified: list[EventRecord] = field(default_factory=list)
    sleeps: list[float] = field(default_factory=list)

    async def sleep(self, seconds: float) -> None:
        """The injected sleep: simulated time passes, the sandbox moves with it."""
        self.sleeps.append(seconds)
        now = self.clock.advance(seconds)
        self.stack.tick(now)

    async def notify(self, event: EventRecord) -> None:
        self.notified.append(event)

    async def run(
        self,
        target: WatchTarget,
        settings: Settings,
        out: io.StringIO | None = None,
        **kwargs: Any,
    ) -> tuple[WatchOutcome, str]:
        engine, probe = watch_engine(
            store=self.store,
            source=self.source,
            workspaces=self.stack.endpoints.workspaces,
            pipelines=self.pipelines,
            intents=self.intents,
            config=lambda: EngineConfig.from_settings(settings),
            clock=self.clock.now,
        )
        out = out or io.StringIO()
        outcome = await run_watch(
            engine,
            self.store,
            target,
            clock=self.clock.now,
            sleep=self.sleep,
            out=out,
            notify=kwargs.pop("notify", self.notify),
            options=WatchOptions.from_settings(settings),
            probe=probe,
            **kwargs,
        )
        return outcome, out.getvalue()


WatchFactory = Callable[[str], Any]


@pytest.fixture
def make_watch(make_world: WorldFactory) -> WatchFactory:
    async def make(scenario: str = SCENARIO) -> Watch:
        w = await make_world(scenario, START)
        return Watch(w.stack, w.clock, w.store, w.source, w.pipelines, PipelineIntentStore(w.db))

    return make


DEFAULTS = settings_from_mapping({})


async def test_exit_0_when_every_watched_circuit_completes(make_watch: WatchFactory) -> None:
    watch: Watch = await make_watch(SCENARIO)
    outcome, output = await watch.run(WatchTarget(circuit_prefix="PLANT002/"), DEFAULTS)

    assert outcome.exit_code is WatchExit.COMPLETED
    assert [(r.circuit, r.verdict.value) for r in outcome.circuits] == [
        ("PLANT002/CIRCUIT02", "completed")
    ]
    assert "All 1 circuit completed" in outcome.summary
    # The progress log names the circuit and its states as it went.
    assert "PLANT002/CIRCUIT02" in output
    assert "running (Running)" in output
    assert "completed (Completed)" in output
    assert "next check in" in output
    assert "PLANT001/CIRCUIT01" not in output  # not watched
    # Only news about the watched circuit is sent.
    assert {e.circuit for e in watch.notified} == {"PLANT002/CIRCUIT02"}
    assert [e.kind for e in watch.notified] == ["training_started", "training_completed"]
    # No real time passed, and the fake sleep did the waiting.
    assert watch.sleeps and all(s >= 1.0 for s in watch.sleeps)


async def test_a_retry_that_succeeds_is_followed_to_exit_0(make_watch: WatchFactory) -> None:
    watch: Watch = await make_watch(SCENARIO)
    # Named by its first job: the retry is a new job, watched because it is the circuit's.
    target = WatchTarget(job_names=("train-plant003-circuit03-1",))
    outcome, output = await watch.run(target, DEFAULTS)

    assert outcome.exit_code is WatchExit.COMPLETED
    assert [(r.job_name, r.attempt, r.verdict.value) for r in outcome.circuits] == [
        ("train-plant003-circuit03-2", 2, "completed")
    ]
    kinds = [e.kind for e in watch.notified]
    assert kinds.count("training_failed") == 1
    assert kinds.count("retry_queued") == 1
    assert kinds[-1] == "training_completed"
    assert "train-plant003-circuit03-2" in output


async def test_exit_1_after_two_retries_and_each_event_notified_once(
    make_watch: WatchFactory,
) -> None:
    watch: Watch = await make_watch(SCENARIO)
    outcome, output = await watch.run(WatchTarget(experiment="circuit-training"), DEFAULTS)

    assert outcome.exit_code is WatchExit.FAILED
    verdicts = {r.circuit: (r.verdict.value, r.attempt) for r in outcome.circuits}
    assert verdicts == {
        "PLANT001/CIRCUIT01": ("failed", 3),
        "PLANT002/CIRCUIT02": ("completed", 1),
        "PLANT003/CIRCUIT03": ("completed", 2),
    }
    assert "FAILED: 1 of 3 circuits did not complete" in outcome.summary
    assert "loss became NaN" in outcome.summary

    # The retries really were queued through the training pipeline.
    runs = [r for r in watch.stack.state()["pipeline_runs"] if r["pipeline"] == "training-pipeline"]
    # However the engine batches them: two retries of PLANT001, one of PLANT003.
    retried = Counter(
        circuit for r in runs for circuit in r["parameters"]["manualCircuits"].split(",")
    )
    assert retried == {"PLANT001/CIRCUIT01": 2, "PLANT003/CIRCUIT03": 1}
    events = await watch.store.events(limit=1000)
    retries = [e for e in events if e.kind == "retry_queued"]
    assert retries and all(e.payload["run_id"] is not None for e in retries)
    failed = [
        e for e in events if e.kind == "training_failed" and e.circuit == "PLANT001/CIRCUIT01"
    ]
    assert [e.payload["retries_exhausted"] for e in failed] == [False, False, True]

    # Every event was about a watched job, and each was notified exactly once.
    ids = [e.id for e in watch.notified]
    assert len(ids) == len(set(ids))
    assert sorted(ids) == sorted(e.id for e in events)
    assert Counter(e.kind for e in watch.notified)["training_failed"] == 4
    for circuit in ("PLANT001/CIRCUIT01", "PLANT002/CIRCUIT02", "PLANT003/CIRCUIT03"):
        assert circuit in output
    assert "failed (Failed)" in output


async def test_exit_1_when_retries_are_disabled(make_watch: WatchFactory) -> None:
    watch: Watch = await make_watch(SCENARIO)
    settings = settings_from_mapping({"MLBOT_AUTO_RETRY_MAX_RETRIES": 0})
    outcome, _ = await watch.run(WatchTarget(circuit_prefix="PLANT001/"), settings)

    assert outcome.exit_code is WatchExit.FAILED
    assert [(r.attempt, r.max_attempts) for r in outcome.circuits] == [(1, 1)]
    assert watch.stack.state()["pipeline_runs"] == []


async def test_exit_2_when_a_job_runs_past_the_max_wait(make_watch: WatchFactory) -> None:
    watch: Watch = await make_watch(LONG_SCENARIO)
    settings = settings_from_mapping({"MLBOT_MONITORING_MAX_WAIT_HOURS": 0.5})
    outcome, output = await watch.run(WatchTarget(experiment="nightly"), settings)

    assert outcome.exit_code is WatchExit.MAX_WAIT_EXCEEDED
    assert "Max wait of 30m 00s exceeded with 1 circuit unfinished" in outcome.summary
    # The engine's own max wait ended it, at 30 minutes, not the watch's hard deadline.
    elapsed = watch.clock.now() - START
    assert 29 * 60 <= elapsed.total_seconds() <= 31 * 60, elapsed
    assert [e.kind for e in watch.notified] == ["training_started", "monitoring_timed_out"]
    assert "PLANT009/CIRCUIT01" in output and "running (Running)" in output


async def test_exit_3_when_azure_ml_refuses_the_identity(make_watch: WatchFactory) -> None:
    watch: Watch = await make_watch(SCENARIO)
    watch.stack.azureml.inject("unauthorized", count=10)
    outcome, output = await watch.run(WatchTarget(experiment="circuit-training"), DEFAULTS)

    assert outcome.exit_code is WatchExit.CONFIGURATION_ERROR
    assert "authentication" in outcome.summary
    assert "AZURE_CLIENT_ID" in outcome.summary  # the setting to fix is named
    assert watch.notified == []
    assert "Configuration error" in output


async def test_exit_3_when_no_job_matches(make_watch: WatchFactory) -> None:
    watch: Watch = await make_watch(SCENARIO)
    outcome, output = await watch.run(WatchTarget(job_names=("no-such-job",)), DEFAULTS)

    assert outcome.exit_code is WatchExit.CONFIGURATION_ERROR
    assert "No job matches job no-such-job" in outcome.summary
    assert watch.clock.now() - START == WatchOptions().grace
    assert "no job matches job no-such-job yet" in output
    assert watch.notified == []


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


async def test_a_failing_notification_neither_stops_nor_repeats(
    make_watch: WatchFactory,
) -> None:
    watch: Watch = await make_watch(SCENARIO)
    attempts: list[int] = []

    async def broken(event: EventRecord) -> None:
        attempts.append(event.id)
        raise ConnectionError("webhook down")

    outcome, output = await watch.run(
        WatchTarget(circuit_prefix="PLANT002/"), DEFAULTS, out=Terminal(), notify=broken
    )
    assert outcome.exit_code is WatchExit.COMPLETED
    assert len(attempts) == 2 and len(set(attempts)) == 2
    assert "warning: notification for training_started failed (ConnectionError)" in output
    # On a terminal the progress block is redrawn in place.
    assert "\x1b[" in output
