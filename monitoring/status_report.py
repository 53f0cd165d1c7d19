"""What `status` shows, assembled from the store only (it never waits on Azure)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from monitoring.jobs import JobState, TrainingJob

# Teams refuses cards above ~28 KB; a status card lists at most this many jobs.
MAX_JOBS_SHOWN = 25


class JobReader(Protocol):
    async def list(self, *, limit: int | None = None) -> list[TrainingJob]: ...


@dataclass(frozen=True, slots=True)
class JobLine:
    job: TrainingJob
    elapsed: timedelta | None


@dataclass(frozen=True, slots=True)
class StatusReport:
    generated_at: datetime
    lines: tuple[JobLine, ...]
    total: int
    counts: dict[JobState, int]
    filter_text: str = ""

    @property
    def hidden(self) -> int:
        return self.total - len(self.lines)


_ORDER = {
    JobState.RUNNING: 0,
    JobState.WAITING: 1,
    JobState.UNKNOWN: 2,
    JobState.FAILED: 3,
    JobState.CANCELED: 4,
    JobState.COMPLETED: 5,
}


def elapsed_of(job: TrainingJob, now: datetime) -> timedelta | None:
    """Run time so far (or total, once ended); None when the job never started."""
    start = job.started_at or (job.created_at if job.state is not JobState.WAITING else None)
    if start is None:
        return None
    end = job.ended_at if job.state.is_terminal and job.ended_at else now
    return max(end - start, timedelta(0))


def matches(job: TrainingJob, filter_text: str) -> bool:
    """A filter narrows by circuit, experiment or job name (case-insensitive substring)."""
    needle = filter_text.strip().lower()
    if not needle:
        return True
    haystack = (job.circuit or "", job.experiment, job.name, job.display_name)
    return any(needle in value.lower() for value in haystack)


def build_status_report(
    jobs: list[TrainingJob], now: datetime, filter_text: str = "", limit: int = MAX_JOBS_SHOWN
) -> StatusReport:
    selected = [job for job in jobs if matches(job, filter_text)]
    counts: dict[JobState, int] = {}
    for job in selected:
        counts[job.state] = counts.get(job.state, 0) + 1
    selected.sort(key=lambda j: (_ORDER[j.state], j.circuit or "", j.name))
    lines = tuple(JobLine(job, elapsed_of(job, now)) for job in selected[:limit])
    return StatusReport(now, lines, len(selected), counts, filter_text.strip())


class StatusService:
    """Builds the status report for the bot from whatever holds watched jobs."""

    def __init__(self, jobs: JobReader) -> None:
        self._jobs = jobs

    async def report(self, now: datetime, filter_text: str = "") -> StatusReport:
        return build_status_report(await self._jobs.list(), now, filter_text)
