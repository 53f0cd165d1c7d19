"""Chat commands landing in the middle of an engine tick, on the real store.

The job source holds one Azure call open while the command runs, so each interleaving
happens every time: the tick has read the rows, the command writes, then the tick
writes what it planned. The command must win.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from domain.jobs import JobState, TrainingJob, Workspace
from monitoring.backoff import BackoffPolicy
from monitoring.engine import EngineConfig, MonitoringEngine
from sandbox.clock import ManualClock
from store.database import Database
from store.monitoring import MonitoringStore
from tests.gated_job_source import GatedJobSource

START = datetime(2026, 11, 29, 6, 0, tzinfo=UTC)
WS = Workspace("sub-1", "rg-1", "mlw-1")
CONFIG = EngineConfig(
    backoff=BackoffPolicy(initial_s=30, multiplier=2, max_delay_s=300, max_wait_s=3 * 3600),
    max_retries=2,
    attempt_timeout=timedelta(seconds=3600),
    reminder_interval=timedelta(hours=4),
    discovery_interval=timedelta(seconds=300),
    training_pipeline="training-pipeline",
)


def training(state: JobState, status: str) -> TrainingJob:
    return TrainingJob(
        workspace=WS.key,
        name="job-1",
        display_name="train PLANT001/CIRCUIT01",
        experiment="circuit-training",
        circuit="PLANT001/CIRCUIT01",
        status=status,
        state=state,
        created_at=START,
        started_at=START,
    )


def engine_on(
    database: Database,
) -> tuple[MonitoringEngine, MonitoringStore, GatedJobSource, ManualClock]:
    clock = ManualClock(START)
    store = MonitoringStore(database)
    source = GatedJobSource()
    engine = MonitoringEngine(
        store=store,
        source=source,
        workspaces=[WS],
        runs=None,
        config=lambda: CONFIG,
        clock=clock.now,
    )
    return engine, store, source, clock


async def test_an_unwatch_during_a_tick_is_not_undone(database: Database) -> None:
    engine, store, source, clock = engine_on(database)
    source.put(training(JobState.RUNNING, "Running"))
    await engine.tick()
    experiment = (await store.job_records(WS.key))["job-1"].session_id

    source.put(training(JobState.COMPLETED, "Completed"))
    clock.advance(30)
    hold = source.hold_next("get")  # the job left the listing: the tick asks how it ended
    tick = asyncio.create_task(engine.tick())
    await hold.reached.wait()
    assert await engine.unwatch_job("job-1")
    hold.release.set()
    await tick

    record = (await store.job_records(WS.key))["job-1"]
    assert record.session_id is not None and record.session_id != experiment
    session = await store.session(record.session_id)
    assert session is not None and session.status == "unwatched"
    for _ in range(3):
        clock.advance(300)
        await engine.tick()
    assert [e.kind for e in await store.events()] == ["training_started"]
    assert not await engine.unwatch_job("job-1")  # still stopped


async def test_a_push_during_a_tick_keeps_its_check_now(database: Database) -> None:
    engine, store, source, clock = engine_on(database)
    source.put(training(JobState.RUNNING, "Running"))
    await engine.tick()
    clock.advance(30)
    await engine.tick()  # two checks: the next one is 60 s away
    (session,) = await store.due_sessions(clock.now() + timedelta(hours=1))

    assert session.next_check_at is not None
    clock.advance((session.next_check_at - clock.now()).total_seconds())
    pushed_at = clock.now()
    hold = source.hold_next("list_active")
    tick = asyncio.create_task(engine.tick())
    await hold.reached.wait()
    assert await engine.check_now(WS.key, "job-1") == 1
    hold.release.set()
    await tick

    after = await store.session(session.id)
    assert after is not None
    assert (after.next_check_at, after.checks_done) == (pushed_at, 0)
    assert await engine.next_wakeup() == pushed_at
