"""What `status` shows: the report, its filter and its order (pure, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from domain.jobs import JobState, TrainingJob

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
    # True until this process's monitoring has looked at the workspaces once: an empty
    # store then means "not looked yet", not "nothing is running".
    first_check_pending: bool = False
    # Silences in force, and events held back (silenced, snoozed, acknowledged) in the
    # last day: recorded, not posted, and said here so that nothing vanishes unseen.
    active_silences: int = 0
    held_recently: int = 0
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


# The states in that order: how cards count jobs ("2 running, 1 failed").
STATES_IN_ORDER: tuple[JobState, ...] = tuple(sorted(JobState, key=STATE_RANK.__getitem__))


def status_order(job: TrainingJob) -> tuple[int, str, str]:
    """The one order of jobs on every card that lists them (`status`, the living card):
    by STATE_RANK, then circuit, then job name, as the store's status index sorts."""
    return (STATE_RANK[job.state], job.circuit or "", job.name)


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
