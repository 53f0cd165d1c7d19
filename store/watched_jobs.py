"""Training jobs mlbot watches, as the last poll saw them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from monitoring.jobs import JobState, TrainingJob
from store.database import Database
from store.tables import watched_jobs


def _aware(value: datetime | None) -> datetime | None:
    # SQLite drops tzinfo; everything mlbot stores is UTC.
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


class WatchedJobStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def upsert(self, job: TrainingJob, *, now: datetime) -> None:
        values: dict[str, Any] = {
            "display_name": job.display_name,
            "experiment": job.experiment,
            "circuit": job.circuit,
            "status": job.status,
            "state": job.state.value,
            "attempt": job.attempt,
            "created_at": job.created_at,
            "started_at": job.started_at,
            "ended_at": job.ended_at,
            "studio_url": job.studio_url,
            "error_summary": job.error_summary,
            "updated_at": now,
        }
        async with self._db.sessions.begin() as session:
            existing = await session.scalar(
                select(watched_jobs.c.id).where(
                    watched_jobs.c.workspace == job.workspace, watched_jobs.c.name == job.name
                )
            )
            if existing is None:
                await session.execute(
                    watched_jobs.insert().values(workspace=job.workspace, name=job.name, **values)
                )
            else:
                await session.execute(
                    watched_jobs.update().where(watched_jobs.c.id == existing).values(**values)
                )

    async def upsert_many(self, jobs: list[TrainingJob], *, now: datetime) -> None:
        for job in jobs:
            await self.upsert(job, now=now)

    async def list(self, *, limit: int | None = None) -> list[TrainingJob]:
        """Active jobs first, then the most recently updated."""
        query = select(watched_jobs).order_by(
            watched_jobs.c.updated_at.desc(), watched_jobs.c.id.desc()
        )
        if limit is not None:
            query = query.limit(limit)
        async with self._db.sessions() as session:
            rows = (await session.execute(query)).all()
        return [_job(row._mapping) for row in rows]

    async def count(self) -> int:
        async with self._db.sessions() as session:
            rows = (await session.execute(select(watched_jobs.c.id))).all()
        return len(rows)


def _job(row: Any) -> TrainingJob:
    try:
        state = JobState(row["state"])
    except ValueError:
        state = JobState.UNKNOWN
    return TrainingJob(
        workspace=row["workspace"],
        name=row["name"],
        display_name=row["display_name"],
        experiment=row["experiment"],
        circuit=row["circuit"],
        status=row["status"],
        state=state,
        created_at=_aware(row["created_at"]),
        started_at=_aware(row["started_at"]),
        ended_at=_aware(row["ended_at"]),
        studio_url=row["studio_url"],
        error_summary=row["error_summary"],
        attempt=row["attempt"],
    )
