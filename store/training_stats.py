"""What `/metrics` learns about trainings and deliveries: events past a cursor, bounded.

Reads only rows newer than the last ones seen (by primary key), so a scrape costs the
same on the thousandth day as on the first.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, select

from store.database import Database, as_utc
from store.tables import events, watched_jobs

# The events a training's story is told with, and the automatic retries.
FINISHED_KINDS = ("training_completed", "training_failed", "training_canceled")
RETRY_KIND = "retry_queued"
_BATCH = 5000


@dataclass(frozen=True, slots=True)
class EventFacts:
    """One event as the metrics see it."""

    id: int
    kind: str
    created_at: datetime
    delivered_at: datetime | None
    experiment: str | None
    started_at: datetime | None
    ended_at: datetime | None
    retried_circuits: int  # retry_queued: how many circuits it queued


class TrainingStatsReader:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def events_after(
        self, after_id: int, *, since: datetime | None = None, limit: int = _BATCH
    ) -> list[EventFacts]:
        """Events with an id above `after_id` (and recorded at `since` or later), oldest
        first, with their job's facts."""
        e, j = events.c, watched_jobs.c
        query = (
            select(
                e.id,
                e.kind,
                e.created_at,
                e.delivered_at,
                e.payload,
                j.experiment,
                j.started_at,
                j.ended_at,
            )
            .select_from(
                events.outerjoin(
                    watched_jobs, and_(j.workspace == e.workspace, j.name == e.job_name)
                )
            )
            .where(e.id > after_id, *([e.created_at >= since] if since is not None else []))
            .order_by(e.id)
            .limit(limit)
        )
        async with self._db.sessions() as session:
            rows = (await session.execute(query)).all()
        return [_facts(row) for row in rows]

    async def delivered(self, ids: Collection[int]) -> dict[int, datetime]:
        """Of `ids`, those delivered everywhere by now, with when."""
        if not ids:
            return {}
        query = select(events.c.id, events.c.delivered_at).where(
            events.c.id.in_(list(ids)), events.c.delivered_at.is_not(None)
        )
        async with self._db.sessions() as session:
            rows = (await session.execute(query)).all()
        return {int(row.id): at for row in rows if (at := as_utc(row.delivered_at)) is not None}


def _facts(row: Any) -> EventFacts:
    payload = row.payload if isinstance(row.payload, dict) else {}
    circuits = payload.get("circuits")
    created = as_utc(row.created_at)
    assert created is not None  # the column is NOT NULL
    return EventFacts(
        id=int(row.id),
        kind=str(row.kind),
        created_at=created,
        delivered_at=as_utc(row.delivered_at),
        experiment=row.experiment,
        started_at=as_utc(row.started_at),
        ended_at=as_utc(row.ended_at),
        retried_circuits=len(circuits) if isinstance(circuits, list) else 0,
    )
