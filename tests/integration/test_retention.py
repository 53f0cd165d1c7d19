"""The prune pass on SQLite and, when MLBOT_TEST_POSTGRES_URL is set, on PostgreSQL:
what is old goes, what is still needed stays, and the audit trail outlasts the rest."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Table, func, select

from domain.attention import Hold, parse_silence
from domain.retention import RetentionPolicy
from monitoring.retention import RetentionPass
from store.attention import AttentionStore
from store.database import Database
from store.deployment_watches import deployment_watches
from store.retention import RetentionStore
from store.tables import (
    audit_log,
    card_actions,
    deliveries,
    event_cursors,
    events,
    monitoring_sessions,
    pipeline_intents,
    posted_activities,
    watched_jobs,
)

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
OLD = NOW - timedelta(days=40)  # past the 30-day history horizon
RECENT = NOW - timedelta(days=5)
ANCIENT = NOW - timedelta(days=500)  # past the 400-day audit horizon


async def insert(db: Database, table: Table, **values: Any) -> Any:
    async with db.engine.begin() as conn:
        result = await conn.execute(table.insert().values(**values))
    key = result.inserted_primary_key
    return key[0] if key else None


async def session(db: Database, key: str, status: str, updated: datetime) -> int:
    return int(
        await insert(
            db,
            monitoring_sessions,
            kind="experiment",
            key=key,
            title=key,
            workspace="ws",
            status=status,
            started_at=updated,
            checks_done=3,
            updated_at=updated,
            version=0,
        )
    )


async def job(
    db: Database,
    name: str,
    session_id: int | None,
    state: str,
    updated: datetime,
    circuit: str | None = None,
) -> None:
    await insert(
        db,
        watched_jobs,
        workspace="ws",
        name=name,
        display_name=name,
        experiment="exp",
        circuit=circuit or name,
        status=state,
        state=state,
        attempt=1,
        updated_at=updated,
        session_id=session_id,
        announced_start=True,
        timed_out=False,
        reminders_sent=0,
        state_rank=2,
        superseded=False,
    )


async def event(
    db: Database,
    key: str,
    *,
    created: datetime,
    delivered: bool = True,
    kind: str = "training_failed",
    session_id: int | None = None,
    delivery: str | None = "sent",
) -> int:
    event_id = int(
        await insert(
            db,
            events,
            key=key,
            kind=kind,
            session_id=session_id,
            payload={},
            created_at=created,
            delivered_at=created if delivered else None,
            delivery_attempts=1,
        )
    )
    if delivery is not None:
        await insert(
            db,
            deliveries,
            event_id=event_id,
            destination="webhook",
            status=delivery,
            attempts=1,
            updated_at=created,
        )
    return event_id


async def keys(db: Database, column: Any) -> set[Any]:
    async with db.engine.connect() as conn:
        return set((await conn.scalars(select(column))).all())


async def count(db: Database, table: Table) -> int:
    async with db.engine.connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(table)) or 0)


async def test_prune_deletes_what_is_old_and_keeps_what_is_needed(database: Database) -> None:
    db = database
    done_old = await session(db, "done-old", "done", OLD)
    watched_old = await session(db, "watched-old", "active", OLD)
    unwatched_old = await session(db, "unwatched-old", "unwatched", OLD)
    done_recent = await session(db, "done-recent", "done", RECENT)
    await job(db, "finished-old", done_old, "failed", OLD, circuit="P/C1")
    await job(db, "in-watched-session", watched_old, "completed", OLD)
    await job(db, "still-running-unwatched", unwatched_old, "running", OLD)
    await job(db, "finished-recently", done_recent, "completed", RECENT, circuit="P/C1")

    gone = {
        await event(db, "old-of-done-session", created=OLD, session_id=done_old),
        await event(db, "old-hook-event", created=OLD, kind="approval_required"),
        await event(db, "deployment-long-ago", created=ANCIENT, kind="deployment_completed"),
        await event(db, "old-failed-delivery", created=OLD, delivery="failed"),
    }
    adopted_retry = await event(db, "adopted-retry", created=OLD, kind="retry_queued")
    gone.add(adopted_retry)
    kept = {
        await event(db, "old-of-watched-session", created=OLD, session_id=watched_old),
        await event(db, "old-delivery-pending", created=OLD, delivery="pending"),
        await event(db, "old-deployment", created=OLD, kind="deployment_failed"),
        await event(db, "recent", created=RECENT),
    }
    undelivered = await event(db, "old-undelivered", created=OLD, delivered=False, delivery=None)
    kept.add(undelivered)
    unresolved_retry = await event(db, "retry-unresolved", created=OLD, kind="retry_queued")
    kept.add(unresolved_retry)
    await insert(
        db,
        event_cursors,
        name="engine.retry_events",
        last_event_id=unresolved_retry,
        updated_at=OLD,
    )
    # A retry event the engine has not turned into an intent yet (past its cursor).
    kept.add(await event(db, "retry-not-adopted", created=OLD, kind="retry_queued"))

    for key, status, updated, event_id in (
        ("retry:queued-old", "queued", OLD, adopted_retry),
        ("retry:unknown-old", "unknown", OLD, unresolved_retry),
        ("card:queued-recent", "queued", RECENT, None),
    ):
        await insert(
            db,
            pipeline_intents,
            key=key,
            pipeline="training-pipeline",
            parameters={},
            status=status,
            posts=1,
            event_id=event_id,
            created_at=updated,
            updated_at=updated,
        )
    for nonce, created in (
        ("n" * 20, NOW - timedelta(days=9)),
        ("m" * 20, NOW - timedelta(days=6)),
    ):
        await insert(
            db,
            card_actions,
            nonce=nonce,
            verb="retry",
            status="done",
            created_at=created,
            updated_at=created,
        )
    for at in (OLD, ANCIENT):
        await insert(db, audit_log, at=at, action="retry", outcome="ok")
    for key, status, session_id in (
        ("card-of-done-session", "posted", done_old),
        ("card-of-watched-session", "posted", watched_old),
        ("run-card-old", "posted", None),
        ("reply-still-posting", "posting", None),
    ):
        await insert(
            db,
            posted_activities,
            key=key,
            destination="teams:c1",
            kind="session_card",
            session_id=session_id,
            status=status,
            uncertain_posts=0,
            created_at=OLD,
            updated_at=OLD,
        )
    for key, status, cooldown in (
        ("healthy-old", "healthy", None),
        ("watching-old", "watching", None),
        ("rolled-back-in-cooldown", "rolled_back", NOW + timedelta(hours=1)),
    ):
        await insert(
            db,
            deployment_watches,
            key=key,
            environment="prod",
            endpoint_resource_id="/e/ep",
            deployment="blue",
            started_at=OLD,
            status=status,
            state={},
            cooldown_until=cooldown,
            updated_at=OLD,
        )

    counts = await RetentionStore(db).prune(RetentionPolicy().cutoffs(NOW), batch_size=500)

    assert await keys(db, events.c.id) == kept
    # Deliveries went with their events; every kept event kept its own.
    assert await keys(db, deliveries.c.event_id) == kept - {undelivered}
    assert await keys(db, watched_jobs.c.name) == {
        "in-watched-session",
        "still-running-unwatched",
        "finished-recently",
    }
    assert await keys(db, monitoring_sessions.c.id) == {watched_old, unwatched_old, done_recent}
    assert await keys(db, posted_activities.c.key) == {
        "card-of-watched-session",
        "reply-still-posting",
    }
    assert await keys(db, deployment_watches.c.key) == {"watching-old", "rolled-back-in-cooldown"}
    assert await keys(db, card_actions.c.nonce) == {"m" * 20}
    assert await keys(db, pipeline_intents.c.key) == {"retry:unknown-old", "card:queued-recent"}
    # The audit trail keeps what every other table let go at 30 days.
    assert [as_day(at) for at in await keys(db, audit_log.c.at)] == [as_day(OLD)]
    assert counts.events == len(gone)
    assert counts.deliveries == len(gone)
    assert counts.monitoring_sessions == 1 and counts.watched_jobs == 1
    assert counts.posted_activities == 2 and counts.deployment_watches == 1
    assert counts.card_actions == 1 and counts.pipeline_intents == 1 and counts.audit_log == 1

    # A second pass finds nothing more to delete.
    assert (await RetentionStore(db).prune(RetentionPolicy().cutoffs(NOW), 500)).total == 0


def as_day(value: datetime) -> str:
    return value.date().isoformat()


async def test_the_last_job_of_a_circuit_stays_with_its_session(database: Database) -> None:
    """A circuit trained once, long ago, is still listed by `status` and known to `retry`."""
    once = await session(database, "trained-once", "done", ANCIENT)
    await job(database, "only-attempt", once, "completed", ANCIENT, circuit="P/ONCE")
    await event(database, "its-event", created=ANCIENT, session_id=once)

    counts = await RetentionStore(database).prune(RetentionPolicy().cutoffs(NOW), 500)

    assert await keys(database, watched_jobs.c.name) == {"only-attempt"}
    assert await keys(database, monitoring_sessions.c.id) == {once}
    assert counts.events == 1  # its history goes; the job and its session stay


async def test_zero_keeps_everything_forever(database: Database) -> None:
    done = await session(database, "done", "done", ANCIENT)
    await job(database, "finished", done, "completed", ANCIENT)
    await event(database, "ancient", created=ANCIENT, session_id=done)
    await insert(database, audit_log, at=ANCIENT, action="retry", outcome="ok")
    policy = RetentionPolicy(history_days=0, nonce_days=0, intent_days=0, audit_days=0)

    counts = await RetentionStore(database).prune(policy.cutoffs(NOW), 500)

    assert counts.total == 0
    for table in (events, deliveries, watched_jobs, monitoring_sessions, audit_log):
        assert await count(database, table) == 1


async def test_a_pass_deletes_in_batches_and_stops_after_its_share(database: Database) -> None:
    for _ in range(7):
        await insert(database, audit_log, at=ANCIENT, action="retry", outcome="ok")
    cutoffs = RetentionPolicy().cutoffs(NOW)

    first = await RetentionStore(database, max_batches=2).prune(cutoffs, batch_size=3)
    assert first.audit_log == 6  # two batches of three, then the pass moves on
    assert await count(database, audit_log) == 1
    second = await RetentionStore(database, max_batches=2).prune(cutoffs, batch_size=3)
    assert second.audit_log == 1 and await count(database, audit_log) == 0


async def test_a_session_in_use_again_is_not_deleted(database: Database) -> None:
    """Reactivated between two passes: the delete's own conditions see it watched."""
    reused = await session(database, "reused", "active", OLD)
    counts = await RetentionStore(database).prune(RetentionPolicy().cutoffs(NOW), 500)
    assert counts.monitoring_sessions == 0
    assert await keys(database, monitoring_sessions.c.id) == {reused}


async def test_the_pass_logs_one_line_when_it_deleted_something(
    database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    await insert(database, audit_log, at=ANCIENT, action="retry", outcome="ok")
    retention = RetentionPass(RetentionStore(database), RetentionPolicy(), lambda: NOW)
    with caplog.at_level(logging.INFO, logger="monitoring.retention"):
        assert (await retention.run()).audit_log == 1
        assert (await retention.run()).total == 0
    lines = [r.getMessage() for r in caplog.records if r.name == "monitoring.retention"]
    assert lines == ["retention: deleted audit_log=1"]


async def test_ended_silences_their_holds_and_old_acknowledgements_are_pruned(
    tmp_path: Path,
) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/attention.db")
    await db.migrate()
    attention = AttentionStore(db)
    old, now = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC)
    request = parse_silence("circuit=PLANT002/ for 2h")
    ended = await attention.add_silence(request, "Dana", old)
    live = await attention.add_silence(request, "Dana", now - timedelta(minutes=5))
    await attention.record_hold(1, Hold("silence", ended.id), old)
    await attention.acknowledge("ws/old-job", "Ada", old)
    await attention.acknowledge("ws/new-job", "Ada", now)
    cutoffs = RetentionPolicy(history_days=30).cutoffs(now)

    counts = await RetentionStore(db).prune(cutoffs, batch_size=100)

    assert (counts.silences, counts.held_events, counts.job_attention) == (1, 1, 1)
    assert [s.id for s in await attention.active_silences(now)] == [live.id]
    assert (await attention.attention("ws/new-job"))[0] is not None
    assert (await attention.attention("ws/old-job")) == (None, None)
    await db.dispose()
