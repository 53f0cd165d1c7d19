"""What the escalation pass reads: recent originals, what became of them, what exists."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime

from sqlalchemy import func, select

from domain.monitoring import EventRecord
from store.database import Database, as_utc
from store.monitoring import event_from_row
from store.tables import events, watched_jobs

_LIMIT = 500  # originals looked at per pass; older ones have long been escalated or not


class EscalationReader:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def recent(
        self, kinds: Sequence[str], since: datetime, until: datetime
    ) -> list[EventRecord]:
        query = (
            select(events)
            .where(
                events.c.kind.in_(list(kinds)),
                events.c.created_at >= since,
                events.c.created_at <= until,
            )
            .order_by(events.c.id)
            .limit(_LIMIT)
        )
        async with self._db.sessions() as session:
            rows = (await session.execute(query)).all()
        return [event_from_row(row._mapping) for row in rows]

    async def existing_keys(self, keys: Collection[str]) -> set[str]:
        if not keys:
            return set()
        query = select(events.c.key).where(events.c.key.in_(list(keys)))
        async with self._db.sessions() as session:
            return {str(key) for key in (await session.scalars(query)).all()}

    async def decided_approvals(self, since: datetime) -> set[str]:
        decided = await self.recent(
            ("approval_decided",), since, datetime.max.replace(tzinfo=since.tzinfo)
        )
        return {
            str(e.payload["approval_id"])
            for e in decided
            if isinstance(e.payload.get("approval_id"), str)
        }

    async def retried(self, failures: Sequence[EventRecord]) -> set[int]:
        """Of `failures`, those whose circuit has a job created after them (a retry)."""
        circuits = {e.circuit for e in failures if e.circuit}
        if not circuits:
            return set()
        c = watched_jobs.c
        query = (
            select(c.circuit, func.max(c.created_at))
            .where(c.circuit.in_(sorted(circuits)))
            .group_by(c.circuit)
        )
        async with self._db.sessions() as session:
            rows = (await session.execute(query)).all()
        newest = {str(circuit): as_utc(at) for circuit, at in rows if circuit and at}
        return {
            e.id
            for e in failures
            if (latest := newest.get(e.circuit or "")) is not None and latest > e.created_at
        }
