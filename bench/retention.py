"""Benchmark: a team's store over simulated days, pruned daily, stays its size.

Each simulated day a team of N circuits (default 1,000) trains every circuit once: the
day's jobs (in ten experiment sessions), their started / completed / failed events, a
retry event per session with failures, deliveries to Teams and the webhook, audit rows,
card action nonces, pipeline intents, deployment health watches and living-card rows are
written through the store's own classes (MonitoringStore, DeliveryStore, AuditTrail, …)
on a SQLite file, with the clock moved a day at a time. Then, as in production:

- one monitoring pass of the real `MonitoringEngine` (a long training job is watched for
  the whole run, so its session and everything it announced must survive), which also
  turns the day's retry events into queued runs through pipeline intents;
- one retention pass (`monitoring.retention.RetentionPass` over `store.retention`).

Printed per day: the database file's size, the rows of each table, the engine pass's
cost (SQL statements, the stored jobs it read for its listing, wall time) and the prune's
(rows deleted, wall time). Times are printed, never checked.

The history horizon defaults to 10 days so that a 30-day run shows three weeks past it
(the production default is 30: `--history-days 30 --days 45`). The run fails (exit 1)
when, from two days past the horizon on, a pruned table or the file still grows (more
than 5 % over its size then), when anything still needed was deleted (undelivered
events, pending deliveries, the watched session, its job and its events, unresolved
intents, live deployment watches, nonces of cards still pressable, any audit row inside
its horizon), or when anything is logged at WARNING or above.

    .venv/bin/python bench/retention.py [--days 30] [--circuits 1000] [--history-days 10]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import Table, func, select
from sqlalchemy import event as sa_event

from bench.run_checks import RunChecks
from domain.destinations import EMAIL, WEBHOOK, TeamsConversation
from domain.events import checked_payload
from domain.jobs import JobState, TrainingJob, Workspace
from domain.monitoring import NewEvent, Observation, SessionSchedule
from domain.retention import MIN_NONCE_DAYS, RetentionPolicy
from monitoring.azure_calls import AzureNotFoundError
from monitoring.backoff import BackoffPolicy
from monitoring.engine import EngineConfig, MonitoringEngine
from monitoring.pipeline_runs import PipelineRuns
from monitoring.retention import RetentionPass
from sandbox.clock import ManualClock
from store.audit import AuditEntry, AuditTrail
from store.card_actions import CardActionStore
from store.database import Database
from store.deliveries import DeliveryStore
from store.deployment_watches import HEALTHY, DeploymentWatchStore, deployment_watches
from store.monitoring import MonitoringStore
from store.pipeline_intents import UNKNOWN, PipelineIntentStore
from store.posted_activities import SESSION_CARD, PostedActivityStore, message_key
from store.retention import RetentionStore
from store.tables import (
    audit_log,
    card_actions,
    deliveries,
    events,
    monitoring_sessions,
    pipeline_intents,
    posted_activities,
    watched_jobs,
)
from store.watched_jobs import job_columns
from tests.engine_fakes import RecordingPipelines

START = datetime(2026, 11, 1, 0, 0, tzinfo=UTC)
WS = Workspace("sub-bench", "rg-bench", "mlw-bench")
GROUPS = 10  # experiment sessions per day
FAIL_EVERY = 20  # one circuit in 20 fails (and is retried)
AUDIT_PER_DAY = 50
NONCES_PER_DAY = 20
INTENTS_PER_DAY = 5
WATCHES_PER_DAY = 3
CONFIG = EngineConfig(
    backoff=BackoffPolicy(initial_s=30, multiplier=2, max_delay_s=300, max_wait_s=3 * 3600),
    max_retries=2,
    attempt_timeout=timedelta(seconds=3600),
    reminder_interval=timedelta(hours=4),
    discovery_interval=timedelta(seconds=300),
    training_pipeline="training-pipeline",
)
TABLES: dict[str, Table] = {
    "events": events,
    "deliveries": deliveries,
    "watched_jobs": watched_jobs,
    "monitoring_sessions": monitoring_sessions,
    "posted_activities": posted_activities,
    "deployment_watches": deployment_watches,
    "card_actions": card_actions,
    "pipeline_intents": pipeline_intents,
    "audit_log": audit_log,
}
PRUNED = [name for name in TABLES if name != "audit_log"]  # audit outlasts the run
LIVE_JOB = "long-training"


class CountingMonitoringStore(MonitoringStore):
    """The real store, counting the stored jobs it hands the engine (its largest read)."""

    jobs_read = 0

    async def job_records(self, workspace: str, *args: Any, **kwargs: Any) -> Any:
        records = await super().job_records(workspace, *args, **kwargs)
        self.jobs_read += len(records)
        return records


class LongJobSource:
    """Azure ML with one training that runs for the whole benchmark."""

    def __init__(self) -> None:
        self.job = TrainingJob(
            workspace=WS.key,
            name=LIVE_JOB,
            display_name="train PLANT000/LONG",
            experiment="long-experiment",
            circuit="PLANT000/LONG",
            status="Running",
            state=JobState.RUNNING,
            created_at=START,
            started_at=START,
        )

    async def list_active(
        self, workspace: Workspace, *, created_since: datetime | None = None
    ) -> list[TrainingJob]:
        return [self.job]

    async def get(self, workspace: Workspace, name: str) -> TrainingJob:
        if name != LIVE_JOB:
            raise AzureNotFoundError("Azure ML", f"get {name}", "gone")
        return self.job

    async def cancel(self, workspace: Workspace, name: str) -> None:
        return None


@dataclass
class Needed:
    """Rows the prune must never delete, by table and key."""

    events: set[str] = field(default_factory=set)
    pending_deliveries: set[int] = field(default_factory=set)
    intents: set[str] = field(default_factory=set)
    watches: set[str] = field(default_factory=set)
    nonces: dict[str, datetime] = field(default_factory=dict)  # nonce -> claimed at


@dataclass
class Day:
    day: int
    file_bytes: int
    rows: dict[str, int]
    tick_statements: int
    tick_jobs_read: int
    tick_ms: float
    pruned: int
    prune_ms: float


@contextmanager
def counted(db: Database) -> Iterator[list[int]]:
    seen = [0]

    def count(*_: Any) -> None:
        seen[0] += 1

    sa_event.listen(db.engine.sync_engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        sa_event.remove(db.engine.sync_engine, "before_cursor_execute", count)


class Team:
    """Writes one simulated day of a team's activity through the store."""

    def __init__(self, db: Database, circuits: int, clock: ManualClock) -> None:
        self.db = db
        self.circuits = circuits
        self.clock = clock
        self.monitoring = CountingMonitoringStore(db)
        self.deliveries = DeliveryStore(db)
        self.audit = AuditTrail(db)
        self.nonces = CardActionStore(db)
        self.intents = PipelineIntentStore(db)
        self.watches = DeploymentWatchStore(db)
        self.posted = PostedActivityStore(db)
        self.needed = Needed()

    async def live_day(self, day: int) -> None:
        now = self.clock.now()
        for group in range(GROUPS):
            await self._training_group(day, group, now)
        await self._hook_events(day, now)
        for n in range(AUDIT_PER_DAY):
            await self.audit.record(
                AuditEntry(at=now, action="status", outcome="ok", actor_id=f"user-{n % 7}")
            )
        for n in range(NONCES_PER_DAY):
            nonce = f"bench-nonce-{day:04d}-{n:04d}"
            await self.nonces.claim(nonce, "retry", "user-1", now)
            await self.nonces.complete(nonce, "ok", {"answer": "queued"}, now)
            self.needed.nonces[nonce] = now
        for n in range(INTENTS_PER_DAY):
            intent, _ = await self.intents.open(
                f"card:{day}:{n}", "training-pipeline", {"manualCircuits": f"C{n}"}, now
            )
            await self.intents.mark_queued(intent.key, 10_000 + day * 10 + n, "https://run", now)
        # One run whose POST got no answer: it stays until it is found or settled.
        unknown, _ = await self.intents.open(f"card:{day}:unknown", "training-pipeline", {}, now)
        await self.intents.begin_post(unknown, now)
        await self.intents.mark_unsettled(unknown.key, UNKNOWN, "timed out", now)
        self.needed.intents.add(unknown.key)
        for n in range(WATCHES_PER_DAY):
            watch, _ = await self.watches.start_watch(
                key=f"prod/ep/blue/{day}-{n}",
                environment="prod",
                endpoint_resource_id="/subscriptions/s/ep",
                deployment="blue",
                run_id=str(day * 10 + n),
                now=now,
                next_check_at=now + timedelta(minutes=1),
            )
            await self.watches.save(watch.id, now=now, status=HEALTHY, state={}, next_check_at=None)
        if day == 0:  # a watch still judging its deployment
            await self.watches.start_watch(
                key="prod/ep/green/live",
                environment="prod",
                endpoint_resource_id="/subscriptions/s/ep",
                deployment="green",
                run_id="1",
                now=now,
                next_check_at=now + timedelta(days=365),
            )
            self.needed.watches.add("prod/ep/green/live")

    async def _training_group(self, day: int, group: int, now: datetime) -> None:
        session = await self.monitoring.open_session(
            kind="experiment",
            key=f"experiment:{WS.key}:retrain-{day}-g{group}",
            title=f"retrain day {day} group {group}",
            workspace=WS.key,
            now=now,
        )
        jobs: list[dict[str, Any]] = []
        news: list[dict[str, Any]] = []
        failed: list[str] = []
        for index in range(group, self.circuits, GROUPS):
            circuit = f"PLANT{index // 100:03d}/CIRCUIT{index % 100:02d}"
            name = f"d{day}-c{index}"
            fails = (index // GROUPS) % FAIL_EVERY == 0  # a few in every session
            job = TrainingJob(
                workspace=WS.key,
                name=name,
                display_name=f"train {circuit}",
                experiment=f"retrain-{day}-g{group}",
                circuit=circuit,
                status="Failed" if fails else "Completed",
                state=JobState.FAILED if fails else JobState.COMPLETED,
                created_at=now - timedelta(hours=2),
                started_at=now - timedelta(hours=2),
                ended_at=now,
            )
            # The columns the engine writes for a job it watched to its end.
            jobs.append(
                {
                    "workspace": WS.key,
                    "name": name,
                    "session_id": session.id,
                    "first_seen_at": job.created_at,
                    "observed_at": now,
                    "running_since": job.started_at,
                    "announced_start": True,
                    "timed_out": False,
                    "reminders_sent": 0,
                    "superseded": False,
                    **job_columns(job, now),
                }
            )
            kind = "training_failed" if fails else "training_completed"
            for key, event_kind in (
                (f"{name}/started", "training_started"),
                (f"{name}/ended", kind),
            ):
                news.append(
                    _event_row(
                        NewEvent(
                            key, event_kind, {"job_name": name}, session.id, WS.key, name, circuit
                        ),
                        now,
                    )
                )
            if fails:
                failed.append(circuit)
        if failed:
            manual = ",".join(failed)
            retry = NewEvent(
                f"{session.key}/retry_queued/{manual}/2",
                "retry_queued",
                {
                    "circuits": failed,
                    "manualCircuits": manual,
                    "attempt": 2,
                    "next_attempts": dict.fromkeys(failed, 2),
                    "max_attempts": 3,
                    "pipeline": "training-pipeline",
                    "run_id": None,
                    "session": session.title,
                },
                session.id,
                WS.key,
            )
            news.append(_event_row(retry, now))
        # A day's jobs and events in one transaction, as one engine pass writes them
        # (in bulk here: the benchmark measures what is stored, not how fast it is written).
        async with self.db.engine.begin() as conn:
            await conn.execute(watched_jobs.insert(), jobs)
            await conn.execute(events.insert(), news)
        await self.monitoring.apply(
            Observation(now, schedules=[SessionSchedule(session.id, "done", 3, now, None)])
        )
        await self._deliver_all(now)
        for conversation in ("conv-a", "conv-b"):
            destination = f"teams:{conversation}"
            key = message_key(SESSION_CARD, session.id, destination)
            await self.posted.begin(
                key, destination=destination, kind=SESSION_CARD, now=now, session_id=session.id
            )
            await self.posted.posted(key, f"activity-{session.id}-{conversation}", now)

    async def _hook_events(self, day: int, now: datetime) -> None:
        """An approval nobody's notifier has reached yet, and one delivery still pending."""
        stuck = f"approval/{day}/undelivered"
        pending = f"approval/{day}/pending"
        await self.monitoring.apply(
            Observation(
                now,
                events=[
                    NewEvent(stuck, "approval_required", {"approval_id": f"a-{day}"}),
                    NewEvent(pending, "approval_required", {"approval_id": f"b-{day}"}),
                ],
            )
        )
        await self._deliver_all(now, except_keys={stuck, pending})
        event_id = await self._id_of(pending)
        await self.deliveries.record(event_id, EMAIL, status="pending", now=now)
        self.needed.events |= {stuck, pending}
        self.needed.pending_deliveries.add(event_id)

    async def _id_of(self, key: str) -> int:
        async with self.db.engine.connect() as conn:
            return int(await conn.scalar(select(events.c.id).where(events.c.key == key)) or 0)

    async def _deliver_all(self, now: datetime, except_keys: set[str] | None = None) -> None:
        """Send every undelivered event to Teams and the webhook, as the dispatcher does."""
        async with self.db.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(events.c.id, events.c.key).where(events.c.delivered_at.is_(None))
                )
            ).all()
        skip = (except_keys or set()) | self.needed.events
        ids = [row.id for row in rows if row.key not in skip]
        for start in range(0, len(ids), 500):
            part = ids[start : start + 500]
            for destination in (TeamsConversation("conv-a"), WEBHOOK):
                await self.deliveries.record_sent(part, destination, now=now, activity_id=None)
        await self.deliveries.complete_events(ids, now)


def _event_row(event: NewEvent, now: datetime) -> dict[str, Any]:
    return {
        "key": event.key,
        "kind": event.kind,
        "session_id": event.session_id,
        "workspace": event.workspace,
        "job_name": event.job_name,
        "circuit": event.circuit,
        "payload": checked_payload(event.kind, event.payload),
        "created_at": now,
        "delivery_attempts": 0,
    }


async def row_counts(db: Database) -> dict[str, int]:
    counts = {}
    async with db.engine.connect() as conn:
        for name, table in TABLES.items():
            counts[name] = int(await conn.scalar(select(func.count()).select_from(table)) or 0)
    return counts


async def check_needed(
    db: Database, team: Team, policy: RetentionPolicy, days: int, checks: RunChecks
) -> None:
    now = team.clock.now()
    async with db.engine.connect() as conn:
        kept_events = set((await conn.scalars(select(events.c.key))).all())
        pending = set(
            (
                await conn.scalars(
                    select(deliveries.c.event_id).where(deliveries.c.status == "pending")
                )
            ).all()
        )
        intents = set((await conn.scalars(select(pipeline_intents.c.key))).all())
        watches = set((await conn.scalars(select(deployment_watches.c.key))).all())
        nonces = set((await conn.scalars(select(card_actions.c.nonce))).all())
        live = (
            await conn.execute(
                select(watched_jobs.c.session_id).where(watched_jobs.c.name == LIVE_JOB)
            )
        ).first()
        live_events = 0
        if live is not None:
            live_events = int(
                await conn.scalar(
                    select(func.count())
                    .select_from(events)
                    .where(events.c.session_id == live.session_id)
                )
                or 0
            )
        audit_rows = int(await conn.scalar(select(func.count()).select_from(audit_log)) or 0)
    checks.items(team.needed.events, [k for k in kept_events if k in team.needed.events], "event")
    checks.items(
        [str(i) for i in team.needed.pending_deliveries],
        [str(i) for i in pending if i in team.needed.pending_deliveries],
        "pending delivery of event",
    )
    checks.items(team.needed.intents, [k for k in intents if k in team.needed.intents], "intent")
    checks.items(team.needed.watches, [k for k in watches if k in team.needed.watches], "watch")
    pressable = now - timedelta(days=policy.nonce_days)
    young = {nonce for nonce, at in team.needed.nonces.items() if at >= pressable}
    checks.items(young, [n for n in nonces if n in young], "nonce")
    checks.require(live is not None, f"the watched job {LIVE_JOB} was deleted")
    checks.require(live_events > 0, "the events of the watched session were deleted")
    checks.require(
        audit_rows == AUDIT_PER_DAY * days,
        f"audit rows inside their horizon were deleted ({audit_rows} left)",
    )


def check_level(days: list[Day], horizon: int, checks: RunChecks) -> None:
    """From two days past the horizon on, nothing pruned may keep growing."""
    reference = next((d for d in days if d.day == horizon + 2), None)
    if reference is None:
        checks.require(False, f"the run must last at least {horizon + 5} days to judge")
        return
    last = days[-1]
    for table in PRUNED:
        limit = reference.rows[table] * 1.05 + 10
        checks.require(
            last.rows[table] <= limit,
            f"{table} still grows after the horizon: {reference.rows[table]} rows on day "
            f"{reference.day}, {last.rows[table]} on day {last.day}",
        )
    checks.require(
        last.file_bytes <= reference.file_bytes * 1.05,
        f"the database file still grows after the horizon: {reference.file_bytes} bytes on "
        f"day {reference.day}, {last.file_bytes} on day {last.day}",
    )


async def run(args: argparse.Namespace, checks: RunChecks) -> list[Day]:
    policy = RetentionPolicy(
        history_days=args.history_days,
        nonce_days=args.nonce_days,
        intent_days=max(args.history_days, MIN_NONCE_DAYS),
        audit_days=400,
    )
    with tempfile.TemporaryDirectory(prefix="mlbot-retention-") as folder:
        path = Path(folder) / "bench.db"
        db = Database(f"sqlite+aiosqlite:///{path}")
        # Commits without waiting for the disk: the run measures sizes and statements,
        # not fsync on a shared machine (which would make it take ten times longer).
        sa_event.listen(db.engine.sync_engine, "connect", _without_fsync)
        await db.migrate()
        clock = ManualClock(START)
        team = Team(db, args.circuits, clock)
        source = LongJobSource()
        engine = MonitoringEngine(
            store=team.monitoring,
            source=source,
            workspaces=[WS],
            runs=PipelineRuns(RecordingPipelines(), team.intents, clock.now),
            config=lambda: CONFIG,
            clock=clock.now,
        )
        retention = RetentionPass(RetentionStore(db), policy, clock.now)
        await engine.tick()  # the long training gets its session
        await team._deliver_all(clock.now())
        results: list[Day] = []
        print(
            f"{'day':>4} {'file MB':>8} "
            + " ".join(f"{name[:11]:>11}" for name in TABLES)
            + f" {'tick SQL':>8} {'jobs read':>9} {'tick ms':>8} {'pruned':>7} {'prune ms':>8}"
        )
        try:
            with checks.timed():
                for day in range(args.days):
                    clock.advance(
                        (START + timedelta(days=day, hours=3) - clock.now()).total_seconds()
                    )
                    await team.live_day(day)
                    clock.advance(9 * 3600)  # midday: the monitoring pass
                    team.monitoring.jobs_read = 0
                    with counted(db) as statements:
                        started = time.perf_counter()
                        report = await engine.tick()
                        tick_ms = (time.perf_counter() - started) * 1000
                    checks.require(
                        not report.failures, f"day {day}: engine pass failed: {report.failures}"
                    )
                    await team._deliver_all(clock.now())
                    clock.advance(3600)
                    started = time.perf_counter()
                    pruned = await retention.run()
                    prune_ms = (time.perf_counter() - started) * 1000
                    result = Day(
                        day,
                        path.stat().st_size,
                        await row_counts(db),
                        statements[0],
                        team.monitoring.jobs_read,
                        tick_ms,
                        pruned.total,
                        prune_ms,
                    )
                    results.append(result)
                    print(
                        f"{day:>4} {result.file_bytes / 1e6:>8.2f} "
                        + " ".join(f"{result.rows[name]:>11}" for name in TABLES)
                        + f" {result.tick_statements:>8} {result.tick_jobs_read:>9}"
                        f" {result.tick_ms:>8.0f} {result.pruned:>7} {result.prune_ms:>8.0f}",
                        flush=True,
                    )
                await check_needed(db, team, policy, args.days, checks)
        finally:
            await db.dispose()
    check_level(results, max(policy.history_days, policy.nonce_days, policy.intent_days), checks)
    return results


def _without_fsync(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA synchronous=OFF")
    cursor.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--circuits", type=int, default=1000)
    parser.add_argument("--history-days", type=int, default=10)
    parser.add_argument("--nonce-days", type=int, default=8)
    args = parser.parse_args()
    checks = RunChecks("retention")
    started = time.perf_counter()
    asyncio.run(run(args, checks))
    print(f"ran {args.days} simulated days in {time.perf_counter() - started:.0f} s")
    sys.exit(checks.exit_code())


if __name__ == "__main__":
    main()
