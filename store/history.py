"""What `history` reads: a circuit's attempts (newest first) and who asked for retries."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, select

from domain.history import RetryRequest
from domain.jobs import TrainingJob
from store.database import Database, as_utc
from store.tables import audit_log, watched_jobs
from store.watched_jobs import job_from_row

# The audit line a confirmed Retry button writes (bot.command_catalog's retry.confirm).
RETRY_ACTION = "card:retry.confirm"
_MAX_RETRY_ROWS = 500


class CircuitHistoryStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def attempts(self, circuit: str, limit: int) -> list[TrainingJob]:
        """The circuit's last `limit` jobs, newest first (by creation, then attempt)."""
        c = watched_jobs.c
        query = (
            select(watched_jobs)
            .where(c.circuit == circuit)
            .order_by(c.created_at.desc().nulls_last(), c.attempt.desc(), c.id.desc())
            .limit(limit)
        )
        async with self._db.sessions() as session:
            rows = (await session.execute(query)).all()
        return [job_from_row(row._mapping) for row in rows]

    async def retry_requests(self, circuit: str, since: datetime | None) -> list[RetryRequest]:
        """Confirmed Retry buttons that named `circuit`, since `since` (bounded)."""
        a = audit_log.c
        conditions = [
            a.action == RETRY_ACTION,
            a.outcome == "ok",
            a.target.contains(circuit, autoescape=True),
        ]
        if since is not None:
            conditions.append(a.at >= since)
        query = (
            select(a.at, a.actor_name, a.actor_id)
            .where(and_(*conditions))
            .order_by(a.at.desc())
            .limit(_MAX_RETRY_ROWS)
        )
        async with self._db.sessions() as session:
            rows = (await session.execute(query)).all()
        return [
            RetryRequest(at=at, by=row.actor_name or row.actor_id or "someone")
            for row in rows
            if (at := as_utc(row.at)) is not None
        ]
