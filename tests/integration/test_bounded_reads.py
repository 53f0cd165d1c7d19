"""Reads that run at every push and every tick do not grow with the history kept.

SQLite's query plans show it: a statement that reads a whole table says `SCAN <table>`;
one that finds its rows through an index says `SEARCH`. The store is filled with a
month of finished sessions, their jobs and their events (retry events among them), and
every SELECT a push or a tick sends is planned again here.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event as sa_event

from domain.jobs import JobState, TrainingJob, Workspace
from monitoring.backoff import BackoffPolicy
from monitoring.engine import EngineConfig, MonitoringEngine
from monitoring.pipeline_runs import PipelineRuns
from sandbox.clock import ManualClock
from store.database import Database
from store.monitoring import MonitoringStore
from store.pipeline_intents import PipelineIntentStore
from store.tables import event_cursors, events, monitoring_sessions, watched_jobs
from tests.engine_fakes import RecordingPipelines
from tests.gated_job_source import GatedJobSource

START = datetime(2026, 11, 29, 6, 0, tzinfo=UTC)
WS = Workspace("sub-1", "rg-1", "mlw-1")
OTHER_WS = "sub-1/rg-1/mlw-history"
CONFIG = EngineConfig(
    backoff=BackoffPolicy(initial_s=30, multiplier=2, max_delay_s=300, max_wait_s=3 * 3600),
    max_retries=2,
    attempt_timeout=timedelta(seconds=3600),
    reminder_interval=timedelta(hours=4),
    discovery_interval=timedelta(seconds=300),
    training_pipeline="training-pipeline",
)
# Tables whose size follows the history kept.
HISTORY_TABLES = ("events", "monitoring_sessions", "watched_jobs", "pipeline_intents")
HISTORY = 1500


@pytest.fixture
async def db(tmp_path: Path) -> Any:
    database = Database(f"sqlite+aiosqlite:///{tmp_path}/bounded.db")
    await database.migrate()
    yield database
    await database.dispose()


async def fill_history(db: Database, sessions: int) -> None:
    """Finished sessions in another workspace, each with a job and two old events."""
    old = START - timedelta(days=20)
    async with db.engine.begin() as conn:
        await conn.execute(
            monitoring_sessions.insert(),
            [
                {
                    "kind": "experiment",
                    "key": f"experiment:{OTHER_WS}:exp-{n}",
                    "title": f"exp-{n}",
                    "workspace": OTHER_WS,
                    "status": "done",
                    "started_at": old,
                    "checks_done": 9,
                    "updated_at": old,
                    "version": 3,
                }
                for n in range(sessions)
            ],
        )
        await conn.execute(
            watched_jobs.insert(),
            [
                {
                    "workspace": OTHER_WS,
                    "name": f"old-job-{n}",
                    "display_name": f"old-job-{n}",
                    "experiment": f"exp-{n}",
                    "circuit": f"P/C{n}",
                    "status": "Failed",
                    "state": "failed",
                    "attempt": 1,
                    "updated_at": old,
                    "session_id": n + 1,
                    "announced_start": True,
                    "timed_out": False,
                    "reminders_sent": 0,
                    "state_rank": 0,
                    "superseded": False,
                }
                for n in range(sessions)
            ],
        )
        await conn.execute(
            events.insert(),
            [
                {
                    "key": f"history/{kind}/{n}",
                    "kind": kind,
                    "session_id": n + 1,
                    "workspace": OTHER_WS,
                    "payload": {"circuits": [f"P/C{n}"], "attempt": 2},
                    "created_at": old,
                    "delivered_at": old,
                    "delivery_attempts": 1,
                }
                for n in range(sessions)
                for kind in ("training_failed", "retry_queued")
            ],
        )
        # The engine turned those retry events into intents long ago.
        await conn.execute(
            event_cursors.insert().values(
                name="engine.retry_events", last_event_id=2 * sessions, updated_at=old
            )
        )


@contextmanager
def selects(db: Database) -> Iterator[list[tuple[str, Any]]]:
    """Every SELECT sent while the block runs, with its parameters."""
    seen: list[tuple[str, Any]] = []

    def keep(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append((statement, parameters))

    sa_event.listen(db.engine.sync_engine, "before_cursor_execute", keep)
    try:
        yield seen
    finally:
        sa_event.remove(db.engine.sync_engine, "before_cursor_execute", keep)


async def full_scans(db: Database, statements: list[tuple[str, Any]]) -> list[str]:
    """The history tables some statement reads from end to end."""
    found = []
    pattern = re.compile(rf"\bSCAN ({'|'.join(HISTORY_TABLES)})\b")
    async with db.engine.connect() as conn:
        for statement, parameters in statements:
            plan = (await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)).all()
            for row in plan:
                match = pattern.search(str(row[-1]))
                if match:
                    found.append(f"{match.group(0)} in: {' '.join(statement.split())[:160]}")
    return found


def running(name: str) -> TrainingJob:
    return TrainingJob(
        workspace=WS.key,
        name=name,
        display_name=name,
        experiment="live-exp",
        circuit="P/LIVE",
        status="Running",
        state=JobState.RUNNING,
        created_at=START,
        started_at=START,
    )


async def engine_on(db: Database) -> tuple[MonitoringEngine, ManualClock, GatedJobSource]:
    clock = ManualClock(START)
    source = GatedJobSource()
    runs = PipelineRuns(RecordingPipelines(), PipelineIntentStore(db), clock.now)
    engine = MonitoringEngine(
        store=MonitoringStore(db),
        source=source,
        workspaces=[WS],
        runs=runs,
        config=lambda: CONFIG,
        clock=clock.now,
    )
    return engine, clock, source


@pytest.mark.parametrize("workspace", [WS.key, None])
async def test_a_push_finds_its_sessions_without_reading_every_session(
    db: Database, workspace: str | None
) -> None:
    await fill_history(db, HISTORY)
    engine, clock, source = await engine_on(db)
    source.put(running("live-job"))
    await engine.tick()  # the live job gets its session
    clock.advance(5)

    with selects(db) as statements:
        touched = await engine.check_now(workspace, "live-job")

    assert touched == 1
    assert len(statements) == 1  # one look-up, then one update
    assert await full_scans(db, statements) == []


async def test_a_tick_reads_no_history_table_from_end_to_end(db: Database) -> None:
    await fill_history(db, HISTORY)
    engine, clock, source = await engine_on(db)
    failed = running("live-job")
    source.put(failed)
    await engine.tick()
    # The job fails: the tick plans its retry from the session's earlier retry events,
    # records the retry event, turns it into an intent and queues the run.
    source.put(replace(failed, status="Failed", state=JobState.FAILED, ended_at=START))
    clock.advance(60)

    with selects(db) as statements:
        report = await engine.tick()

    assert report.runs_queued == 1
    assert await full_scans(db, statements) == []


class CountingStore(MonitoringStore):
    """The real store, counting the stored jobs it hands the engine."""

    jobs_read = 0

    async def job_records(self, workspace: str, *args: Any, **kwargs: Any) -> Any:
        records = await super().job_records(workspace, *args, **kwargs)
        self.jobs_read += len(records)
        return records


async def test_a_tick_reads_the_jobs_in_flight_not_the_finished_history(db: Database) -> None:
    """A month of finished jobs in the same workspace as the one running."""
    await fill_history(db, HISTORY)
    async with db.engine.begin() as conn:
        await conn.execute(watched_jobs.update().values(workspace=WS.key))
    clock = ManualClock(START)
    source = GatedJobSource()
    source.put(running("live-job"))
    store = CountingStore(db)
    engine = MonitoringEngine(
        store=store,
        source=source,
        workspaces=[WS],
        runs=None,
        config=lambda: CONFIG,
        clock=clock.now,
    )
    await engine.tick()
    clock.advance(300)  # discovery lists the workspace again
    store.jobs_read = 0

    report = await engine.tick()

    assert report.listings == 1
    assert store.jobs_read == 1  # the running job; none of the 1,500 finished ones
