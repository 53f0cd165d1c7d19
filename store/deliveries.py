"""Who has received which event: one row per (event, destination).

Recording each destination separately means a retry after a partial failure resends
only to the destinations that did not get the event. Writes go through a group commit:
the delivery worker sends to many conversations at once, and their rows share commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from store.database import Database, as_utc
from store.group_commit import GroupCommit, upsert
from store.tables import deliveries, events


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    event_id: int
    destination: str
    status: str  # pending | sent | failed
    attempts: int
    activity_id: str | None
    last_error: str | None
    next_attempt_at: datetime | None


class DeliveryStore:
    def __init__(self, db: Database, writes: GroupCommit | None = None) -> None:
        self._db = db
        self._writes = writes or GroupCommit(db)

    async def for_event(self, event_id: int) -> dict[str, DeliveryRecord]:
        return (await self.for_events([event_id])).get(event_id, {})

    async def for_events(self, event_ids: Sequence[int]) -> dict[int, dict[str, DeliveryRecord]]:
        """The rows of several events at once: {event id: {destination: record}}."""
        found: dict[int, dict[str, DeliveryRecord]] = {}
        ids = list(dict.fromkeys(event_ids))
        async with self._db.engine.connect() as conn:
            for part in _slices(ids):
                rows = (
                    await conn.execute(select(deliveries).where(deliveries.c.event_id.in_(part)))
                ).all()
                for row in rows:
                    found.setdefault(row.event_id, {})[row.destination] = DeliveryRecord(
                        event_id=row.event_id,
                        destination=row.destination,
                        status=row.status,
                        attempts=row.attempts,
                        activity_id=row.activity_id,
                        last_error=row.last_error,
                        next_attempt_at=as_utc(row.next_attempt_at),
                    )
        return found

    async def record(
        self,
        event_id: int,
        destination: str,
        *,
        status: str,
        now: datetime,
        activity_id: str | None = None,
        error: str | None = None,
        next_attempt_at: datetime | None = None,
    ) -> None:
        await self._record(
            [event_id],
            destination,
            status=status,
            now=now,
            activity_id=activity_id,
            error=error,
            next_attempt_at=next_attempt_at,
        )

    async def record_sent(
        self,
        event_ids: list[int],
        destination: str,
        *,
        now: datetime,
        activity_id: str | None,
    ) -> None:
        """Several events reached `destination` in one message: recorded together, so a
        crash leaves either all of them to send again or none."""
        await self._record(event_ids, destination, status="sent", now=now, activity_id=activity_id)

    async def _record(
        self,
        event_ids: list[int],
        destination: str,
        *,
        status: str,
        now: datetime,
        activity_id: str | None = None,
        error: str | None = None,
        next_attempt_at: datetime | None = None,
    ) -> None:
        values = {
            "status": status,
            "activity_id": activity_id,
            "last_error": (error or "")[:2000] or None,
            "next_attempt_at": next_attempt_at,
            "updated_at": now,
        }

        async def write(conn: AsyncConnection) -> None:
            await _upsert(conn, event_ids, destination, values)

        await self._writes.run(write)

    async def complete_events(self, event_ids: Sequence[int], now: datetime) -> None:
        """Every destination of these events has received them or failed for good."""
        ids = list(event_ids)
        if not ids:
            return

        async def write(conn: AsyncConnection) -> None:
            for part in _slices(ids):
                await conn.execute(
                    events.update()
                    .where(events.c.id.in_(part))
                    .values(delivered_at=now, delivery_attempts=events.c.delivery_attempts + 1)
                )

        await self._writes.run(write)

    async def stuck(self, limit: int = 20) -> list[tuple[str, str, str]]:
        """(event kind, destination, error) of deliveries that failed for good."""
        query = (
            select(events.c.kind, deliveries.c.destination, deliveries.c.last_error)
            .join(events, events.c.id == deliveries.c.event_id)
            .where(deliveries.c.status == "failed")
            .order_by(deliveries.c.id.desc())
            .limit(limit)
        )
        # A plain connection, not an ORM session: `status` asks on every call.
        async with self._db.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [(row[0], row[1], row[2] or "") for row in rows]


def _slices(ids: list[int], size: int = 500) -> list[list[int]]:
    """`ids` in parts small enough for one statement (a database limits its parameters)."""
    return [ids[start : start + size] for start in range(0, len(ids), size)]


async def _upsert(
    conn: AsyncConnection, event_ids: list[int], destination: str, values: dict[str, Any]
) -> None:
    """Count one more attempt on each (event, destination) row, creating it on the first."""
    rows = [
        {"event_id": event_id, "destination": destination, "attempts": 1, **values}
        for event_id in event_ids
    ]
    update = {"attempts": deliveries.c.attempts + 1, **values}
    if await upsert(conn, deliveries, rows, ["event_id", "destination"], update):
        return
    for event_id in event_ids:
        # A row another worker creates in between makes the insert fail, and the group
        # commit runs this write again alone: the update then finds the row.
        updated = await conn.execute(
            deliveries.update()
            .where(and_(deliveries.c.event_id == event_id, deliveries.c.destination == destination))
            .values(**update)
        )
        if not updated.rowcount:
            await conn.execute(
                deliveries.insert().values(
                    event_id=event_id, destination=destination, attempts=1, **values
                )
            )
