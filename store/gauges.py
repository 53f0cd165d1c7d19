"""Counts of what the store holds, for the `/metrics` endpoint (one query per table)."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Table, func, select

from store.database import Database
from store.deployment_watches import deployment_watches
from store.tables import deliveries, events, monitoring_sessions, watched_jobs


@dataclass(frozen=True, slots=True)
class StoreGauges:
    jobs_by_state: dict[str, int] = field(default_factory=dict)
    sessions_by_status: dict[str, int] = field(default_factory=dict)
    deliveries_by_status: dict[str, int] = field(default_factory=dict)
    watches_by_status: dict[str, int] = field(default_factory=dict)
    events_total: int = 0
    events_undelivered: int = 0


class GaugeReader:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def read(self) -> StoreGauges:
        async with self._db.sessions() as session:

            async def by(table: Table, column: str) -> dict[str, int]:
                col = table.c[column]
                rows = await session.execute(select(col, func.count()).group_by(col))
                return {str(value): int(count) for value, count in rows.all()}

            jobs = await by(watched_jobs, "state")
            sessions = await by(monitoring_sessions, "status")
            sent = await by(deliveries, "status")
            watches = await by(deployment_watches, "status")
            total = await session.scalar(select(func.count()).select_from(events))
            undelivered = await session.scalar(
                select(func.count()).select_from(events).where(events.c.delivered_at.is_(None))
            )
        return StoreGauges(jobs, sessions, sent, watches, int(total or 0), int(undelivered or 0))
