"""Pipeline intents: every run mlbot queues in Azure DevOps, recorded before it is queued.

A row is written under a key that names what asked for the run (a card action, a retry
event, a deployment watch) before the POST goes out, and completed with the run id after.
What each status means and when a run is looked for instead of posted again is decided
in `monitoring.pipeline_runs`; this module only stores it, one short transaction per
method. Compare-and-set writes (`begin_post`) keep two callers, processes or replicas
from posting the same intent at once.

It also keeps the engine's cursor over the events table (`new_events`), so retry events
become intents without every tick reading every retry event ever stored.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.exc import IntegrityError

from domain.pipeline_intents import (
    FAILED,
    PENDING,
    POSTING,
    QUEUED,
    UNKNOWN,
    UNRESOLVED,
    PipelineIntent,
    StoredEvent,
)
from store.database import Database, as_utc
from store.tables import event_cursors, events, pipeline_intents

__all__ = [
    "FAILED",
    "PENDING",
    "POSTING",
    "QUEUED",
    "UNKNOWN",
    "UNRESOLVED",
    "PipelineIntent",
    "PipelineIntentStore",
    "StoredEvent",
]

# Lifecycle: see domain/pipeline_intents.py and docs/pipeline-runs.md.
_KEY_MAX = 600  # the column's length


def _intent(row: Any) -> PipelineIntent:
    created = as_utc(row["created_at"])
    updated = as_utc(row["updated_at"])
    assert created is not None and updated is not None
    parameters = row["parameters"] if isinstance(row["parameters"], dict) else {}
    return PipelineIntent(
        key=row["key"],
        pipeline=row["pipeline"],
        parameters={str(k): str(v) for k, v in parameters.items()},
        status=row["status"],
        run_id=row["run_id"],
        run_url=row["run_url"],
        posts=row["posts"] or 0,
        posted_at=as_utc(row["posted_at"]),
        error=row["error"],
        event_id=row["event_id"],
        created_at=created,
        updated_at=updated,
    )


class PipelineIntentStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def open(
        self,
        key: str,
        pipeline: str,
        parameters: Mapping[str, str],
        now: datetime,
        *,
        event_id: int | None = None,
        posted_at: datetime | None = None,
        run_id: int | None = None,
        run_url: str | None = None,
    ) -> tuple[PipelineIntent, bool]:
        """The intent under `key`, recorded now unless it exists; True when recorded now.

        `posted_at` records that a POST may already have left (an intent noted before this
        table existed); `run_id` records a run already known.
        """
        if not key or len(key) > _KEY_MAX:
            raise ValueError(f"a pipeline intent key has 1 to {_KEY_MAX} characters")
        values = {
            "key": key,
            "pipeline": pipeline,
            "parameters": {str(k): str(v) for k, v in parameters.items()},
            "status": QUEUED if run_id is not None else PENDING,
            "run_id": run_id,
            "run_url": run_url,
            "posts": 0,
            "posted_at": posted_at,
            "event_id": event_id,
            "created_at": now,
            "updated_at": now,
        }
        try:
            async with self._db.sessions.begin() as session:
                await session.execute(pipeline_intents.insert().values(**values))
        except IntegrityError:
            existing = await self.get(key)
            if existing is None:
                raise RuntimeError(
                    f"pipeline intent {key} could be neither written nor read"
                ) from None
            return existing, False
        created = await self.get(key)
        assert created is not None
        return created, True

    async def get(self, key: str) -> PipelineIntent | None:
        async with self._db.sessions() as session:
            row = (
                await session.execute(select(pipeline_intents).where(pipeline_intents.c.key == key))
            ).first()
        return _intent(row._mapping) if row is not None else None

    async def begin_post(self, intent: PipelineIntent, now: datetime) -> bool:
        """Claim the next POST of `intent` as it was read; False when someone else did."""
        async with self._db.sessions.begin() as session:
            updated = await session.execute(
                pipeline_intents.update()
                .where(
                    and_(
                        pipeline_intents.c.key == intent.key,
                        pipeline_intents.c.status == intent.status,
                        pipeline_intents.c.posts == intent.posts,
                    )
                )
                .values(
                    status=POSTING,
                    posts=intent.posts + 1,
                    posted_at=now,
                    error=None,
                    updated_at=now,
                )
            )
        return bool(getattr(updated, "rowcount", 0))

    async def mark_queued(self, key: str, run_id: int, run_url: str, now: datetime) -> None:
        async with self._db.sessions.begin() as session:
            await session.execute(
                pipeline_intents.update()
                .where(and_(pipeline_intents.c.key == key, pipeline_intents.c.status != QUEUED))
                .values(status=QUEUED, run_id=run_id, run_url=run_url, error=None, updated_at=now)
            )

    async def mark_unsettled(self, key: str, status: str, error: str, now: datetime) -> None:
        """After a POST: `unknown` or `failed`, unless the run was found meanwhile."""
        if status not in (UNKNOWN, FAILED):
            raise ValueError(status)
        async with self._db.sessions.begin() as session:
            await session.execute(
                pipeline_intents.update()
                .where(and_(pipeline_intents.c.key == key, pipeline_intents.c.status == POSTING))
                .values(status=status, error=error[:2000], updated_at=now)
            )

    async def unresolved(self, key_prefix: str, limit: int) -> list[PipelineIntent]:
        """Intents under `key_prefix` without a run yet, oldest first (indexed on status)."""
        query = (
            select(pipeline_intents)
            .where(
                and_(
                    pipeline_intents.c.status.in_(UNRESOLVED),
                    pipeline_intents.c.key.startswith(key_prefix, autoescape=True),
                )
            )
            .order_by(pipeline_intents.c.created_at, pipeline_intents.c.key)
            .limit(limit)
        )
        async with self._db.sessions() as session:
            rows = (await session.execute(query)).all()
        return [_intent(row._mapping) for row in rows]

    async def run_taken(self, pipeline: str, run_id: int, other_than: str) -> bool:
        """Whether another intent already holds this run (same parameters, asked twice)."""
        async with self._db.sessions() as session:
            found = await session.scalar(
                select(pipeline_intents.c.key)
                .where(
                    and_(
                        pipeline_intents.c.pipeline == pipeline,
                        pipeline_intents.c.run_id == run_id,
                        pipeline_intents.c.key != other_than,
                    )
                )
                .limit(1)
            )
        return found is not None

    # --- the events cursor -------------------------------------------------------------
    async def new_events(self, cursor: str, kind: str, limit: int) -> tuple[list[StoredEvent], int]:
        """Events of `kind` past `cursor`, and the position to move the cursor to after
        them. Reads a range of the events' primary key, never the whole table."""
        async with self._db.sessions() as session:
            position = await session.scalar(
                select(event_cursors.c.last_event_id).where(event_cursors.c.name == cursor)
            )
            start = int(position or 0)
            newest = int(await session.scalar(select(func.max(events.c.id))) or 0)
            rows = (
                await session.execute(
                    select(events.c.id, events.c.key, events.c.payload)
                    .where(and_(events.c.id > start, events.c.id <= newest, events.c.kind == kind))
                    .order_by(events.c.id)
                    .limit(limit)
                )
            ).all()
        found = [
            StoredEvent(row.id, row.key, dict(row.payload) if isinstance(row.payload, dict) else {})
            for row in rows
        ]
        end = found[-1].id if len(found) == limit else newest
        return found, max(end, start)

    async def event_payload(self, event_id: int) -> dict[str, Any] | None:
        async with self._db.sessions() as session:
            payload = await session.scalar(select(events.c.payload).where(events.c.id == event_id))
        return dict(payload) if isinstance(payload, dict) else None

    async def move_cursor(self, cursor: str, position: int, now: datetime) -> None:
        async with self._db.sessions.begin() as session:
            updated = await session.execute(
                event_cursors.update()
                .where(event_cursors.c.name == cursor)
                .values(last_event_id=position, updated_at=now)
            )
            if not getattr(updated, "rowcount", 0):
                await session.execute(
                    event_cursors.insert().values(
                        name=cursor, last_event_id=position, updated_at=now
                    )
                )
