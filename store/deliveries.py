"""Who has received which event: one row per (event, destination).

Recording each destination separately means a retry after a partial failure resends
only to the destinations that did not get the event.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, select
from sqlalchemy.exc import IntegrityError

from store.database import Database, as_utc
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
    def __init__(self, db: Database) -> None:
        self._db = db

    async def for_event(self, event_id: int) -> dict[str, DeliveryRecord]:
        async with self._db.sessions() as session:
            rows = (
                await session.execute(select(deliveries).where(deliveries.c.event_id == event_id))
            ).all()
        records = [
            DeliveryRecord(
                event_id=row.event_id,
                destination=row.destination,
                status=row.status,
                attempts=row.attempts,
                activity_id=row.activity_id,
                last_error=row.last_error,
                next_attempt_at=as_utc(row.next_attempt_at),
            )
            for row in rows
        ]
        return {record.destination: record for record in records}

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
        values = {
            "status": status,
            "activity_id": activity_id,
            "last_error": (error or "")[:2000] or None,
            "next_attempt_at": next_attempt_at,
            "updated_at": now,
        }
        async with self._db.sessions.begin() as session:
            updated = await session.execute(
                deliveries.update()
                .where(
                    and_(deliveries.c.event_id == event_id, deliveries.c.destination == destination)
                )
                .values(attempts=deliveries.c.attempts + 1, **values)
            )
            if getattr(updated, "rowcount", 0):
                return
        try:
            async with self._db.sessions.begin() as session:
                await session.execute(
                    deliveries.insert().values(
                        event_id=event_id, destination=destination, attempts=1, **values
                    )
                )
        except IntegrityError:
            # Another worker recorded it in between: count this attempt on that row.
            await self.record(
                event_id,
                destination,
                status=status,
                now=now,
                activity_id=activity_id,
                error=error,
                next_attempt_at=next_attempt_at,
            )

    async def stuck(self, limit: int = 20) -> list[tuple[str, str, str]]:
        """(event kind, destination, error) of deliveries that failed for good."""
        query = (
            select(events.c.kind, deliveries.c.destination, deliveries.c.last_error)
            .join(events, events.c.id == deliveries.c.event_id)
            .where(deliveries.c.status == "failed")
            .order_by(deliveries.c.id.desc())
            .limit(limit)
        )
        async with self._db.sessions() as session:
            rows = (await session.execute(query)).all()
        return [(row[0], row[1], row[2] or "") for row in rows]
