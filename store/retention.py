"""Deleting what the store no longer needs, in small batches.

The horizons come from `domain.retention`; this module adds what is still in use, whatever
the horizon says, and never deletes it:

- an event not yet delivered, one with a delivery still pending, one a pipeline intent
  without a run stands for, a retry event the engine has not turned into an intent yet,
  and any event of a session still watched (its retry events say which attempts were
  already asked for);
- a job that has not finished, whose session is still watched, or that is the last one
  of its circuit (`status` lists it, `retry` knows the circuit by it);
- a session still watched, one that still holds jobs or events;
- a Teams message whose session still exists (a living card may be updated again), or
  whose send is not settled;
- a deployment watch still judging, rolling back or in its cooldown;
- a pipeline intent without a known run.

Each batch is one short transaction of a few statements (at most `batch_size` rows), so
a pass never holds the database for long, and a pass stops after `max_batches` per table:
a backlog (the first pass on an old database) is worked off over the following passes.
Every delete repeats its conditions in its outer WHERE, so a row that came back into use
between the look-up and the delete (a session reactivated) is left alone; on PostgreSQL
the outer conditions are checked again on the row as it is when the delete locks it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Table, and_, delete, exists, func, not_, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.events import EventKind
from domain.jobs import JobState
from domain.pipeline_intents import QUEUED
from domain.retention import LONG_KEPT_EVENT_KINDS, PruneCounts, RetentionCutoffs
from store.database import Database
from store.deployment_watches import DUE_STATUSES, deployment_watches
from store.tables import (
    audit_log,
    card_actions,
    deliveries,
    event_cursors,
    events,
    held_events,
    job_attention,
    monitoring_sessions,
    pipeline_intents,
    posted_activities,
    silences,
    watched_jobs,
)

# Sessions with checks still scheduled (store.monitoring.WATCHING, kept apart so this
# module needs nothing of the engine's store).
_WATCHED_SESSION = ("active", "timed_out")
_FINISHED_JOB = tuple(state.value for state in JobState if state.is_terminal)
_UNRESOLVED_INTENT_STATUSES_EXCLUDED = (QUEUED,)
_RETRY_QUEUED = EventKind.RETRY_QUEUED.value


class RetentionStore:
    def __init__(self, db: Database, *, max_batches: int = 20) -> None:
        self._db = db
        self._max_batches = max_batches

    async def prune(self, cutoffs: RetentionCutoffs, batch_size: int) -> PruneCounts:
        """Delete, table by table, what `cutoffs` allow and nothing still needed."""
        counts = PruneCounts()
        if cutoffs.history is not None:
            counts += await self._events(_event_prunable(cutoffs), batch_size)
            counts += PruneCounts(
                watched_jobs=await self._batches(
                    watched_jobs, watched_jobs.c.id, _job_prunable(cutoffs), batch_size
                )
            )
            counts += await self._sessions(_session_prunable(cutoffs), batch_size)
            counts += PruneCounts(
                posted_activities=await self._batches(
                    posted_activities,
                    posted_activities.c.key,
                    _posted_prunable(cutoffs),
                    batch_size,
                ),
                deployment_watches=await self._batches(
                    deployment_watches,
                    deployment_watches.c.id,
                    _watch_prunable(cutoffs),
                    batch_size,
                ),
            )
            counts += await self._attention(cutoffs.history, batch_size)
        if cutoffs.nonces is not None:
            counts += PruneCounts(
                card_actions=await self._batches(
                    card_actions,
                    card_actions.c.nonce,
                    card_actions.c.created_at < cutoffs.nonces,
                    batch_size,
                )
            )
        if cutoffs.intents is not None:
            counts += PruneCounts(
                pipeline_intents=await self._batches(
                    pipeline_intents,
                    pipeline_intents.c.key,
                    and_(
                        pipeline_intents.c.status.in_(_UNRESOLVED_INTENT_STATUSES_EXCLUDED),
                        pipeline_intents.c.updated_at < cutoffs.intents,
                    ),
                    batch_size,
                )
            )
        if cutoffs.audit is not None:
            counts += PruneCounts(
                audit_log=await self._batches(
                    audit_log, audit_log.c.id, audit_log.c.at < cutoffs.audit, batch_size
                )
            )
        return counts

    async def _attention(self, before: datetime, batch_size: int) -> PruneCounts:
        """Silences that ended, the record of events they held, acknowledgements and
        snoozes nobody touched since the horizon (their jobs are long finished)."""
        ended = func.coalesce(silences.c.ended_early_at, silences.c.ends_at)
        return PruneCounts(
            silences=await self._batches(silences, silences.c.id, ended < before, batch_size),
            held_events=await self._batches(
                held_events, held_events.c.event_id, held_events.c.held_at < before, batch_size
            ),
            job_attention=await self._batches(
                job_attention,
                job_attention.c.job_key,
                job_attention.c.updated_at < before,
                batch_size,
            ),
        )

    async def _batches(
        self, table: Table, key: Any, condition: ColumnElement[bool], batch_size: int
    ) -> int:
        deleted = 0
        for _ in range(self._max_batches):
            async with self._db.engine.begin() as conn:
                result = await conn.execute(_delete_batch(table, key, condition, batch_size))
            count = int(getattr(result, "rowcount", 0) or 0)
            deleted += count
            if count < batch_size:
                break
        return deleted

    async def _events(self, condition: ColumnElement[bool], batch_size: int) -> PruneCounts:
        """Events with their deliveries, in one transaction per batch."""
        counts = PruneCounts()
        for _ in range(self._max_batches):
            async with self._db.engine.begin() as conn:
                ids = await _deleted_ids(conn, events, events.c.id, condition, batch_size)
                gone = await _delete_where_in(conn, deliveries, deliveries.c.event_id, ids)
            counts += PruneCounts(events=len(ids), deliveries=gone)
            if len(ids) < batch_size:
                break
        return counts

    async def _sessions(self, condition: ColumnElement[bool], batch_size: int) -> PruneCounts:
        """Sessions with the Teams messages (living cards) that showed them."""
        counts = PruneCounts()
        for _ in range(self._max_batches):
            async with self._db.engine.begin() as conn:
                ids = await _deleted_ids(
                    conn, monitoring_sessions, monitoring_sessions.c.id, condition, batch_size
                )
                cards = await _delete_where_in(
                    conn, posted_activities, posted_activities.c.session_id, ids
                )
            counts += PruneCounts(monitoring_sessions=len(ids), posted_activities=cards)
            if len(ids) < batch_size:
                break
        return counts


def _delete_batch(table: Table, key: Any, condition: ColumnElement[bool], limit: int) -> Any:
    """At most `limit` rows matching `condition`, the condition checked again on delete."""
    chosen = select(key).where(condition).limit(limit)
    return delete(table).where(and_(key.in_(chosen.scalar_subquery()), condition))


async def _deleted_ids(
    conn: AsyncConnection, table: Table, key: Any, condition: ColumnElement[bool], limit: int
) -> list[int]:
    statement = _delete_batch(table, key, condition, limit).returning(key)
    return [int(row[0]) for row in (await conn.execute(statement)).all()]


async def _delete_where_in(
    conn: AsyncConnection, table: Table, column: Any, ids: Sequence[int]
) -> int:
    if not ids:
        return 0
    result = await conn.execute(delete(table).where(column.in_(list(ids))))
    return int(getattr(result, "rowcount", 0) or 0)


def _watched(session_id: Any) -> ColumnElement[bool]:
    """The row belongs to a session that is still watched."""
    s = monitoring_sessions.c
    return exists().where(and_(s.id == session_id, s.status.in_(_WATCHED_SESSION)))


def _event_prunable(cutoffs: RetentionCutoffs) -> ColumnElement[bool]:
    assert cutoffs.history is not None
    e = events.c
    d = deliveries.c
    i = pipeline_intents.c
    old = e.created_at < cutoffs.history
    if cutoffs.audit is not None:
        # Deployment events show the last deployment per environment: kept with the audit.
        old_enough = or_(
            and_(e.kind.not_in(LONG_KEPT_EVENT_KINDS), old),
            and_(e.kind.in_(LONG_KEPT_EVENT_KINDS), e.created_at < cutoffs.audit),
        )
    else:
        old_enough = and_(e.kind.not_in(LONG_KEPT_EVENT_KINDS), old)
    adopted = func.coalesce(select(func.max(event_cursors.c.last_event_id)).scalar_subquery(), 0)
    return and_(
        old_enough,
        e.delivered_at.is_not(None),
        not_(exists().where(and_(d.event_id == e.id, d.status == "pending"))),
        not_(exists().where(and_(i.event_id == e.id, i.status != QUEUED))),
        # A retry event past the engine's cursor has not become a pipeline intent yet.
        or_(e.kind != _RETRY_QUEUED, e.id <= adopted),
        or_(e.session_id.is_(None), not_(_watched(e.session_id))),
    )


def _job_prunable(cutoffs: RetentionCutoffs) -> ColumnElement[bool]:
    assert cutoffs.history is not None
    j = watched_jobs.c
    newer = watched_jobs.alias("newer")
    # The last job of each circuit stays, however old: `status` lists every circuit, and
    # `retry` knows a circuit by the jobs it has seen.
    superseded = exists().where(
        and_(
            newer.c.workspace == j.workspace,
            newer.c.circuit == j.circuit,
            newer.c.id > j.id,
        )
    )
    return and_(
        j.state.in_(_FINISHED_JOB),
        j.updated_at < cutoffs.history,
        or_(j.session_id.is_(None), not_(_watched(j.session_id))),
        or_(j.circuit.is_(None), superseded),
    )


def _session_prunable(cutoffs: RetentionCutoffs) -> ColumnElement[bool]:
    assert cutoffs.history is not None
    s = monitoring_sessions.c
    return and_(
        s.status.not_in(_WATCHED_SESSION),
        s.updated_at < cutoffs.history,
        not_(exists().where(watched_jobs.c.session_id == s.id)),
        not_(exists().where(events.c.session_id == s.id)),
    )


def _posted_prunable(cutoffs: RetentionCutoffs) -> ColumnElement[bool]:
    assert cutoffs.history is not None
    p = posted_activities.c
    return and_(
        p.status == "posted",
        p.updated_at < cutoffs.history,
        or_(
            p.session_id.is_(None),
            not_(exists().where(monitoring_sessions.c.id == p.session_id)),
        ),
        or_(
            p.event_id.is_(None),
            not_(exists().where(and_(events.c.id == p.event_id, events.c.delivered_at.is_(None)))),
        ),
    )


def _watch_prunable(cutoffs: RetentionCutoffs) -> ColumnElement[bool]:
    assert cutoffs.history is not None
    w = deployment_watches.c
    return and_(
        w.status.not_in(DUE_STATUSES),
        w.updated_at < cutoffs.history,
        or_(w.cooldown_until.is_(None), w.cooldown_until < cutoffs.now),
    )
