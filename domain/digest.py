"""The daily digest: what happened in a day, per circuit, for conversations that ask.

`digest daily at 09:00 Europe/Berlin` in a conversation asks for one card a day at that
local time: trainings completed, failed and retried per circuit, each circuit's run time
against its median, deployments, rollbacks and the approvals still open. Everything here
is pure: parsing the request, when a digest is due, and the figures.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from domain.jobs import JobState, TrainingJob

DEFAULT_TIME = time(9, 0)
DEFAULT_ZONE = "UTC"
MAX_CIRCUITS = 25  # rows on the card; the rest are counted
_TIME = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


class DigestInputError(ValueError):
    """What was typed is not a digest request; the text says how to write one."""


@dataclass(frozen=True, slots=True)
class DigestRequest:
    enabled: bool
    at: time = DEFAULT_TIME
    zone: str = DEFAULT_ZONE


_USAGE = "e.g. digest daily at 09:00 Europe/Berlin, or digest off"


def parse_digest(args: str) -> DigestRequest | None:
    """`daily [at] HH:MM [Zone]`, `off`; None for the bare word (show the current one)."""
    words = [w for w in args.split() if w.casefold() not in ("daily", "at")]
    if not args.strip():
        return None
    if len(words) == 1 and words[0].casefold() in ("off", "stop", "none"):
        return DigestRequest(enabled=False)
    if not words or len(words) > 2:
        raise DigestInputError(f"Say when: {_USAGE}.")
    match = _TIME.match(words[0])
    if match is None:
        raise DigestInputError(f"'{words[0][:10]}' is not a time of day (HH:MM); {_USAGE}.")
    zone = words[1] if len(words) == 2 else DEFAULT_ZONE
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise DigestInputError(
            f"'{zone[:40]}' is not a time zone; use an IANA name such as Europe/Berlin."
        ) from None
    return DigestRequest(True, time(int(match.group(1)), int(match.group(2))), zone)


def due_on(now: datetime, at: time, zone: str, last_sent: date | None) -> date | None:
    """The local date whose digest is due now, or None (sent already, or not time yet)."""
    local = now.astimezone(ZoneInfo(zone))
    if local.time() < at or (last_sent is not None and last_sent >= local.date()):
        return None
    return local.date()


@dataclass(frozen=True, slots=True)
class CircuitDay:
    circuit: str
    completed: int = 0
    failed: int = 0
    retried: int = 0
    last_duration: timedelta | None = None
    median: timedelta | None = None


@dataclass(frozen=True, slots=True)
class DigestFacts:
    day: date
    zone: str
    circuits: tuple[CircuitDay, ...]
    hidden_circuits: int = 0
    deployments: tuple[str, ...] = ()
    rollbacks: tuple[str, ...] = ()
    open_approvals: tuple[str, ...] = ()

    @property
    def totals(self) -> tuple[int, int, int]:
        return (
            sum(c.completed for c in self.circuits),
            sum(c.failed for c in self.circuits),
            sum(c.retried for c in self.circuits),
        )


def _duration(job: TrainingJob) -> timedelta | None:
    if job.started_at is None or job.ended_at is None:
        return None
    return max(job.ended_at - job.started_at, timedelta(0))


@dataclass
class _Tally:
    completed: int = 0
    failed: int = 0
    retried: int = 0
    last: TrainingJob | None = None
    history: list[timedelta] = field(default_factory=list)


def build_digest(
    day: date,
    zone: str,
    finished: Iterable[TrainingJob],
    history: Iterable[TrainingJob],
    *,
    deployments: Sequence[str] = (),
    rollbacks: Sequence[str] = (),
    open_approvals: Sequence[str] = (),
) -> DigestFacts:
    """`finished`: jobs that ended in the day; `history`: completed jobs of those circuits
    (for their median run time). Circuits with failures come first."""
    tallies: dict[str, _Tally] = {}
    for job in finished:
        if not job.circuit:
            continue
        tally = tallies.setdefault(job.circuit, _Tally())
        if job.state == JobState.COMPLETED:
            tally.completed += 1
        elif job.state in (JobState.FAILED, JobState.CANCELED):
            tally.failed += 1
        if job.attempt > 1:
            tally.retried += 1
        if tally.last is None or (job.ended_at or job.created_at or day) > (
            tally.last.ended_at or tally.last.created_at or day
        ):
            tally.last = job
    for job in history:
        if job.circuit in tallies and job.state == JobState.COMPLETED:
            duration = _duration(job)
            if duration is not None:
                tallies[job.circuit].history.append(duration)
    rows = [
        CircuitDay(
            circuit,
            t.completed,
            t.failed,
            t.retried,
            _duration(t.last) if t.last is not None else None,
            timedelta(seconds=statistics.median(d.total_seconds() for d in t.history))
            if t.history
            else None,
        )
        for circuit, t in tallies.items()
    ]
    rows.sort(key=lambda r: (-r.failed, -r.retried, r.circuit))
    return DigestFacts(
        day,
        zone,
        tuple(rows[:MAX_CIRCUITS]),
        max(len(rows) - MAX_CIRCUITS, 0),
        tuple(deployments),
        tuple(rollbacks),
        tuple(open_approvals),
    )
