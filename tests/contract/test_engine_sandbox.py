"""The monitoring engine against the sandbox, through the production adapters.

A manual clock plays hours of schedule in moments: nothing sleeps for real.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from config.settings import Settings, settings_from_mapping
from monitoring.azureml import AzureMLJobSource
from monitoring.devops import AzureDevOpsPipelines
from monitoring.engine import EngineConfig, MonitoringEngine, TickReport
from monitoring.pipeline_runs import PipelineRuns
from sandbox.clock import ManualClock
from sandbox.stack import SandboxStack
from store.database import Database
from store.monitoring import MonitoringStore
from store.pipeline_intents import PipelineIntentStore
from tests.contract.sandbox_world import WorldFactory

START = datetime(2026, 11, 29, 6, 0, tzinfo=UTC)

SCENARIO = """
name: engine-test
subscription_id: 00000000-0000-0000-0000-0000000000e1
resource_group: rg-engine
experiment: circuit-training
workspaces:
  - name: mlw-engine
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
  - circuit: PLANT003/CIRCUIT03   # runs nine hours: two reminders
    start_after_s: 0
    duration_s: 32400
pipelines:
  training: {name: training-pipeline, circuits_parameter: manualCircuits,
             submit_after_s: 60, finish_after_s: 5}
  deployment: {name: deployment-pipeline, duration_s: 60, result: succeeded}
  rollback: {name: rollback-pipeline, duration_s: 60, result: succeeded}
"""


@dataclass
class World:
    stack: SandboxStack
    clock: ManualClock
    db: Database
    store: MonitoringStore
    settings: Settings
    source: AzureMLJobSource
    pipelines: AzureDevOpsPipelines

    def engine(self) -> MonitoringEngine:
        """A fresh engine on the same store: what a restarted process builds."""
        return MonitoringEngine(
            store=self.store,
            source=self.source,
            workspaces=self.stack.endpoints.workspaces,
            runs=PipelineRuns(self.pipelines, PipelineIntentStore(self.db), self.clock.now),
            config=lambda: EngineConfig.from_settings(self.settings),
            clock=self.clock.now,
        )


@pytest.fixture
async def world(make_world: WorldFactory) -> World:
    w = await make_world(SCENARIO, START)
    settings = settings_from_mapping({})
    return World(w.stack, w.clock, w.db, w.store, settings, w.source, w.pipelines)


async def play(
    world: World, engine: MonitoringEngine, seconds: float, step: float = 15.0
) -> list[TickReport]:
    """Advance the simulated world; the engine ticks whenever it asks to."""
    reports = []
    end = world.clock.now().timestamp() + seconds
    while world.clock.now().timestamp() < end:
        now = world.clock.advance(step)
        world.stack.tick(now)
        if now >= await engine.next_wakeup():
            reports.append(await engine.tick())
    return reports


async def test_retries_twice_then_exhausted_reminders_and_restart(world: World) -> None:
    engine = world.engine()
    reports = await play(world, engine, 2 * 3600)

    # Halfway through: "restart" with a brand-new engine on the same store.
    engine = world.engine()
    reports += await play(world, engine, 8 * 3600)

    events = await world.store.events(limit=1000)
    kinds = Counter(e.kind for e in events)
    keys = [e.key for e in events]
    assert len(keys) == len(set(keys)), "no event is recorded twice"

    failed = [e for e in events if e.kind == "training_failed"]
    assert [e.payload["attempt"] for e in failed] == [1, 2, 3]
    assert [e.payload["retries_exhausted"] for e in failed] == [False, False, True]
    assert all(e.circuit == "PLANT001/CIRCUIT01" for e in failed)
    assert "loss became NaN" in failed[0].payload["error_summary"]

    retries = [e for e in events if e.kind == "retry_queued"]
    assert [e.payload["manualCircuits"] for e in retries] == ["PLANT001/CIRCUIT01"] * 2
    assert all(e.payload["run_id"] is not None for e in retries)
    runs = world.stack.state()["pipeline_runs"]
    training_runs = [r for r in runs if r["pipeline"] == "training-pipeline"]
    assert [r["parameters"] for r in training_runs] == [
        {"manualCircuits": "PLANT001/CIRCUIT01"}
    ] * 2

    completed = {e.circuit for e in events if e.kind == "training_completed"}
    assert completed == {"PLANT002/CIRCUIT02", "PLANT003/CIRCUIT03"}

    reminders = [e for e in events if e.kind == "long_running"]
    assert [(e.circuit, e.payload["reminder"]) for e in reminders] == [
        ("PLANT003/CIRCUIT03", 1),
        ("PLANT003/CIRCUIT03", 2),
    ]
    # The session outlived its 3 h max wait with a job still running: said once.
    assert kinds["monitoring_timed_out"] == 1
    assert kinds["training_started"] == 5  # 3 circuits + 2 retries

    # Never a call per job per tick: at most one listing per tick (one workspace).
    assert all(r.listings <= 1 for r in reports)
    calls = sum(r.api_calls for r in reports)
    assert calls < 200, calls


async def test_restart_repeats_nothing(world: World) -> None:
    engine = world.engine()
    await play(world, engine, 1800)
    # Bring the store fully up to date at this instant, then "restart".
    await engine.check_now()
    await engine.tick()
    before = [e.key for e in await world.store.events(limit=1000)]
    assert before, "the first half hour produced events"

    # Same instant, new engine: a tick sees the same world and adds nothing new.
    restarted = world.engine()
    report = await restarted.tick()
    assert report.events == []
    assert [e.key for e in await world.store.events(limit=1000)] == before


async def test_push_event_makes_the_session_check_now(world: World) -> None:
    engine = world.engine()
    await play(world, engine, 20 * 60)
    wake = await engine.next_wakeup()
    assert wake > world.clock.now()
    touched = await engine.check_now(world.stack.endpoints.workspaces[0].key)
    assert touched == 1
    assert await engine.next_wakeup() <= world.clock.now()


async def test_unwatch_stops_the_events_of_a_job_and_watch_brings_them_back(
    world: World,
) -> None:
    engine = world.engine()
    await play(world, engine, 120)
    long_job = next(
        j["name"] for j in world.stack.state()["jobs"] if j["circuit"] == "PLANT003/CIRCUIT03"
    )
    assert await engine.unwatch_job(long_job)
    assert not await engine.unwatch_job(long_job)  # already stopped
    assert not await engine.unwatch_job("no-such-job")
    cutoff = max(e.id for e in await world.store.events(limit=1000))

    await play(world, engine, 10 * 3600)
    later = [e for e in await world.store.events(limit=1000) if e.id > cutoff]
    assert all(e.job_name != long_job for e in later), "no reminders, no completion"
    # The rest of its experiment is still watched.
    completed = {e.circuit for e in later if e.kind == "training_completed"}
    assert "PLANT002/CIRCUIT02" in completed

    # Watched by hand again: its own session, and the ending it missed is announced.
    job = await engine.watch_job(long_job, "Ada Lovelace")
    assert job.name == long_job
    sessions = {s.key: s for s in await world.store.sessions()}
    manual = sessions[f"manual:{job.workspace}:{long_job}"]
    assert manual.kind == "manual" and manual.status == "active"
    assert await engine.next_wakeup() <= world.clock.now()
    await play(world, engine, 60)
    ended = [e for e in await world.store.events(limit=1000) if e.job_name == long_job]
    assert ended[-1].kind == "training_completed"

    with pytest.raises(LookupError, match="no-such-job"):
        await engine.watch_job("no-such-job", "Ada Lovelace")


async def test_ends_come_with_the_listing_and_a_pushed_completion_is_seen_soon(
    world: World,
) -> None:
    # With an Event Grid subscription; the listing reaches back to the oldest unfinished
    # job, so the engine never asks Azure ML for one job.
    world.settings = settings_from_mapping({"MLBOT_EVENTGRID_SAFETY_NET_SECONDS": "1200"})
    engine = world.engine()
    quick = next(
        j["name"] for j in world.stack.state()["jobs"] if j["circuit"] == "PLANT002/CIRCUIT02"
    )
    for _ in range(200):
        await play(world, engine, 15)
        status = {j["name"]: j["status"] for j in world.stack.state()["jobs"]}
        if status[quick] == "Completed":
            break
    assert status[quick] == "Completed"
    pushed_at = world.clock.now()
    before = [e for e in await world.store.events(limit=1000) if e.job_name == quick]
    assert "training_completed" not in {e.kind for e in before}  # not seen yet

    await engine.check_now(world.stack.endpoints.workspaces[0].key, quick, "Completed")
    await play(world, engine, 30)
    completed = [
        e
        for e in await world.store.events(limit=1000)
        if e.job_name == quick and e.kind == "training_completed"
    ]
    assert len(completed) == 1
    assert (completed[0].created_at - pushed_at).total_seconds() <= 30
    job_reads = [
        r for r in world.stack.azureml.requests if r.method == "GET" and "/jobs/" in r.path
    ]
    assert job_reads == []
