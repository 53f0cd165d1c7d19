"""What `status` shows, assembled from the store only (it never waits on Azure)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from domain.leadership import LeaderView
from monitoring.jobs import JobState, TrainingJob

# Teams refuses cards above ~28 KB; a status card lists at most this many jobs.
MAX_JOBS_SHOWN = 25
# Circuits, experiments and job names are far shorter; a longer filter matches nothing
# and only costs the database (a huge LIKE pattern is refused as "too complex").
MAX_FILTER_CHARS = 100


class StatusFilterError(ValueError):
    """The `status` filter cannot be used; the message is meant for the user."""


def status_filter(raw: str) -> str:
    """The filter as `status` uses it: trimmed, on one line, at most MAX_FILTER_CHARS."""
    text = " ".join(raw.split())
    if len(text) > MAX_FILTER_CHARS:
        raise StatusFilterError(
            f"The filter is {len(text):,} characters long; use at most {MAX_FILTER_CHARS}, "
            "for example `status PLANT001/CIRCUIT01`."
        )
    return text


# LIKE's escape character for `like_pattern`; any character works, this one needs no quoting.
LIKE_ESCAPE = "!"


def like_pattern(text: str, escape: str = LIKE_ESCAPE) -> str:
    """A LIKE pattern that matches `text` anywhere, its `%` and `_` taken literally."""
    for ch in (escape, "%", "_"):
        text = text.replace(ch, escape + ch)
    return f"%{text}%"


@dataclass(frozen=True, slots=True)
class JobPage:
    """The first jobs in status order, and counts by state over everything that matched."""

    jobs: list[TrainingJob]
    counts: dict[JobState, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())


class JobReader(Protocol):
    async def status_page(self, filter_text: str, limit: int) -> JobPage: ...


@dataclass(frozen=True, slots=True)
class PendingApproval:
    pipeline: str
    stage: str
    environment: str
    since: datetime


@dataclass(frozen=True, slots=True)
class LastDeployment:
    environment: str
    pipeline: str
    run: str
    succeeded: bool
    at: datetime


class DeploymentReader(Protocol):
    async def pending_approvals(self, limit: int = 10) -> list[PendingApproval]: ...

    async def last_deployments(self) -> list[LastDeployment]: ...


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
    # (event kind, destination, error) of notifications that could not be delivered.
    stuck: tuple[tuple[str, str, str], ...] = ()
    approvals: tuple[PendingApproval, ...] = ()
    deployments: tuple[LastDeployment, ...] = ()
    # With several replicas: which one runs the engine (for operators).
    leader_note: str = ""

    @property
    def hidden(self) -> int:
        return self.total - len(self.lines)


# Status order: what needs attention first. The store sorts by the same ranks.
STATE_RANK: dict[JobState, int] = {
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


def build_status_report(page: JobPage, now: datetime, filter_text: str = "") -> StatusReport:
    lines = tuple(JobLine(job, elapsed_of(job, now)) for job in page.jobs)
    return StatusReport(now, lines, page.total, dict(page.counts), filter_text.strip())


class StuckReader(Protocol):
    async def stuck(self, limit: int = 20) -> list[tuple[str, str, str]]: ...


def leader_note(view: LeaderView) -> str:
    """One line naming the replica that runs the engine, and the one answering."""
    if view.leader is None:
        return (
            f"No replica leads the engine right now (this is {view.replica_id}); "
            "one takes over when the lease expires."
        )
    if view.leader == view.replica_id:
        return f"Replica {view.replica_id} (this one) leads the engine."
    return f"Replica {view.leader} leads the engine (this is {view.replica_id})."


class StatusService:
    """Builds the status report for the bot from the store (never from Azure)."""

    def __init__(
        self,
        jobs: JobReader,
        stuck: StuckReader | None = None,
        deployments: DeploymentReader | None = None,
        limit: int = MAX_JOBS_SHOWN,
        leader: Callable[[], LeaderView] | None = None,
    ) -> None:
        self._jobs = jobs
        self._stuck = stuck
        self._deployments = deployments
        self._limit = limit
        self._leader = leader

    async def report(self, now: datetime, filter_text: str = "") -> StatusReport:
        """Raises StatusFilterError for a filter that cannot be used."""
        filter_text = status_filter(filter_text)
        page = await self._jobs.status_page(filter_text, self._limit)
        report = build_status_report(page, now, filter_text)
        if self._stuck is not None:
            report = dataclasses.replace(report, stuck=tuple(await self._stuck.stuck(limit=5)))
        if self._deployments is not None and not filter_text.strip():
            report = dataclasses.replace(
                report,
                approvals=tuple(await self._deployments.pending_approvals()),
                deployments=tuple(await self._deployments.last_deployments()),
            )
        if self._leader is not None:
            report = dataclasses.replace(report, leader_note=leader_note(self._leader()))
        return report
