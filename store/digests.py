"""Which conversations want a daily digest, and what a digest reads."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any

from sqlalchemy import delete, select, update

from domain.jobs import JobState, TrainingJob
from store.database import Database
from store.group_commit import upsert
from store.tables import digests, events, watched_jobs
from store.watched_jobs import job_from_row

_MAX_JOBS = 5000  # finished jobs one digest reads (a day of a large team)
_HISTORY_PER_CIRCUIT = 20


@dataclass(frozen=True, slots=True)
class DigestSubscription:
    conversation_id: str
    at: time
    zone: str
    last_sent_on: date | None
    created_by: str


def _subscription(row: Any) -> DigestSubscription:
    hours, minutes = str(row.at_time).split(":")
    return DigestSubscription(
        conversation_id=row.conversation_id,
        at=time(int(hours), int(minutes)),
        zone=row.zone,
        last_sent_on=row.last_sent_on,
        created_by=row.created_by,
    )


class DigestStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, conversation_id: str) -> DigestSubscription | None:
        query = select(digests).where(digests.c.conversation_id == conversation_id)
        async with self._db.sessions() as session:
            row = (await session.execute(query)).first()
        return _subscription(row) if row is not None else None

    async def set(
        self, conversation_id: str, at: time, zone: str, by: str, now: datetime
    ) -> DigestSubscription:
        values = {"at_time": f"{at:%H:%M}", "zone": zone, "created_by": by, "updated_at": now}
        row = {"conversation_id": conversation_id, **values}
        async with self._db.engine.begin() as conn:
            if not await upsert(conn, digests, [row], ["conversation_id"], values):
                raise RuntimeError("the store needs SQLite or PostgreSQL (INSERT … ON CONFLICT)")
        found = await self.get(conversation_id)
        assert found is not None
        return found

    async def remove(self, conversation_id: str) -> bool:
        async with self._db.sessions.begin() as session:
            result = await session.execute(
                delete(digests).where(digests.c.conversation_id == conversation_id)
            )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def all(self) -> list[DigestSubscription]:
        async with self._db.sessions() as session:
            rows = (await session.execute(select(digests).limit(1000))).all()
        return [_subscription(row) for row in rows]

    async def mark_sent(self, conversation_id: str, day: date) -> None:
        async with self._db.sessions.begin() as session:
            await session.execute(
                update(digests)
                .where(digests.c.conversation_id == conversation_id)
                .values(last_sent_on=day)
            )

    # --- what a digest says -------------------------------------------------------------

    async def finished_between(self, start: datetime, end: datetime) -> list[TrainingJob]:
        c = watched_jobs.c
        query = (
            select(watched_jobs)
            .where(c.ended_at >= start, c.ended_at < end)
            .order_by(c.ended_at)
            .limit(_MAX_JOBS)
        )
        async with self._db.sessions() as session:
            rows = (await session.execute(query)).all()
        return [job_from_row(row._mapping) for row in rows]

    async def completed_history(self, circuits: Sequence[str]) -> list[TrainingJob]:
        """The latest completed jobs of each circuit (for its median run time)."""
        if not circuits:
            return []
        c = watched_jobs.c
        query = (
            select(watched_jobs)
            .where(c.circuit.in_(sorted(set(circuits))), c.state == JobState.COMPLETED.value)
            .order_by(c.ended_at.desc())
            .limit(_HISTORY_PER_CIRCUIT * len(set(circuits)))
        )
        async with self._db.sessions() as session:
            rows = (await session.execute(query)).all()
        return [job_from_row(row._mapping) for row in rows]

    async def events_between(
        self, kinds: Sequence[str], start: datetime, end: datetime
    ) -> list[tuple[str, dict[str, object]]]:
        e = events.c
        query = (
            select(e.kind, e.payload)
            .where(e.kind.in_(list(kinds)), e.created_at >= start, e.created_at < end)
            .order_by(e.id)
            .limit(200)
        )
        async with self._db.sessions() as session:
            rows = (await session.execute(query)).all()
        return [(str(row.kind), dict(row.payload or {})) for row in rows]
