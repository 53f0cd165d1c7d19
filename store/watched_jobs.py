"""Training jobs mlbot watches, as the last poll saw them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Integer, Select, String, and_, bindparam, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.jobs import JobState, TrainingJob
from domain.status import LIKE_ESCAPE, STATE_RANK, JobPage, like_pattern
from store.database import Database, as_utc
from store.tables import watched_jobs


class WatchedJobStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def upsert(self, job: TrainingJob, *, now: datetime) -> None:
        values = job_columns(job, now)
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
            await mark_superseded(session, job)

    async def list(self, *, limit: int | None = None) -> list[TrainingJob]:
        """Active jobs first, then the most recently updated."""
        query = select(watched_jobs).order_by(
            watched_jobs.c.updated_at.desc(), watched_jobs.c.id.desc()
        )
        if limit is not None:
            query = query.limit(limit)
        async with self._db.sessions() as session:
            rows = (await session.execute(query)).all()
        return [job_from_row(row._mapping) for row in rows]

    async def status_page(self, filter_text: str, limit: int) -> JobPage:
        """Jobs in status order (attention first), filtered, limited, with state counts.

        Sorting, filtering and counting happen in SQL so a big store costs no more
        than the rows shown; the statements are built once and reused.
        """
        filtered = bool(filter_text)
        rows_query, counts_query = _STATUS_QUERIES[filtered]
        params: dict[str, Any] = {"limit": limit}
        if filtered:
            params["needle"] = like_pattern(filter_text.lower(), LIKE_ESCAPE)
        # A plain connection, not an ORM session: this runs on every `status`.
        async with self._db.engine.connect() as conn:
            rows = (await conn.execute(rows_query, params)).all()
            count_rows = (await conn.execute(counts_query, params)).all()
        counts = {_STATE_OF_RANK[rank]: int(number) for rank, number in count_rows}
        return JobPage([job_from_row(row._mapping) for row in rows], counts)

    async def known_circuits(self) -> set[str]:
        """Every circuit a training job has been seen for (to catch typos in `retry`)."""
        async with self._db.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(watched_jobs.c.circuit)
                    .where(watched_jobs.c.circuit.is_not(None))
                    .distinct()
                )
            ).all()
        return {str(row[0]) for row in rows}

    async def count(self) -> int:
        async with self._db.engine.connect() as conn:
            return int(await conn.scalar(select(func.count()).select_from(watched_jobs)) or 0)


def job_columns(job: TrainingJob, now: datetime) -> dict[str, Any]:
    """The `watched_jobs` columns that describe the job itself (not the engine's memory)."""
    return {
        "display_name": job.display_name,
        "experiment": job.experiment,
        "circuit": job.circuit,
        "status": job.status,
        "state": job.state.value,
        "state_rank": STATE_RANK[job.state],
        "attempt": job.attempt,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "ended_at": job.ended_at,
        "studio_url": job.studio_url,
        "error_summary": job.error_summary,
        "created_by": job.created_by,
        "updated_at": now,
    }


async def mark_superseded(session: AsyncSession, job: TrainingJob) -> None:
    """Keep `superseded` true exactly for attempts older than the circuit's latest."""
    if not job.circuit:
        return
    c = watched_jobs.c
    same_circuit = and_(c.workspace == job.workspace, c.circuit == job.circuit)
    await session.execute(
        watched_jobs.update()
        .where(and_(same_circuit, c.attempt < job.attempt, c.superseded.is_(False)))
        .values(superseded=True)
    )
    newer = await session.scalar(
        select(c.id).where(and_(same_circuit, c.attempt > job.attempt)).limit(1)
    )
    await session.execute(
        watched_jobs.update()
        .where(and_(c.workspace == job.workspace, c.name == job.name))
        .values(superseded=newer is not None)
    )


def _status_queries(filtered: bool) -> tuple[Select[Any], Select[Any]]:
    c = watched_jobs.c
    # A retried circuit is shown once, by its latest attempt: earlier attempts are history.
    latest = c.superseded.is_(False)
    rows_query = select(watched_jobs).where(latest).order_by(c.state_rank, c.circuit, c.name)
    rows_query = rows_query.limit(bindparam("limit", type_=Integer))
    # Counted by rank, one per state: the status-order index alone answers it (no row
    # is read), so the count stays cheap however many jobs the store holds.
    counts_query = select(c.state_rank, func.count()).where(latest).group_by(c.state_rank)
    if filtered:
        needle = bindparam("needle", type_=String)
        condition = or_(
            func.lower(c.circuit).like(needle, escape=LIKE_ESCAPE),
            func.lower(c.experiment).like(needle, escape=LIKE_ESCAPE),
            func.lower(c.name).like(needle, escape=LIKE_ESCAPE),
            func.lower(c.display_name).like(needle, escape=LIKE_ESCAPE),
        )
        rows_query = rows_query.where(condition)
        counts_query = counts_query.where(condition)
    return rows_query, counts_query


_STATUS_QUERIES = {filtered: _status_queries(filtered) for filtered in (False, True)}
_STATE_OF_RANK = {rank: state for state, rank in STATE_RANK.items()}


def _state(value: str) -> JobState:
    try:
        return JobState(value)
    except ValueError:
        return JobState.UNKNOWN


def job_from_row(row: Any) -> TrainingJob:
    """The job a `watched_jobs` row (or a mapping with its columns) describes."""
    state = _state(row["state"])
    return TrainingJob(
        workspace=row["workspace"],
        name=row["name"],
        display_name=row["display_name"],
        experiment=row["experiment"],
        circuit=row["circuit"],
        status=row["status"],
        state=state,
        created_at=as_utc(row["created_at"]),
        started_at=as_utc(row["started_at"]),
        ended_at=as_utc(row["ended_at"]),
        studio_url=row["studio_url"],
        error_summary=row["error_summary"],
        attempt=row["attempt"],
        created_by=row.get("created_by") if hasattr(row, "get") else None,
    )
