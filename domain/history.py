"""A circuit's training history: its last attempts, how each ended, and who asked for it.

Pure: the store hands over the jobs and the retry requests it found; this module decides
what each attempt shows and the figures over them (median duration, success rate).
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from domain.jobs import JobState, TrainingJob

DEFAULT_ATTEMPTS = 10
MAX_ATTEMPTS = 30  # a card (and a chart) stays legible on a phone
_COUNT = re.compile(r"^\d{1,3}$")


class HistoryRequestError(ValueError):
    """What was typed after `history` cannot be understood; the message says how."""


@dataclass(frozen=True, slots=True)
class HistoryRequest:
    circuit: str
    limit: int


def parse_history_request(args: str) -> HistoryRequest:
    """`PLANT001/CIRCUIT01 [N]`: the circuit and how many attempts (default 10, at most 30)."""
    words = args.split()
    if not words:
        raise HistoryRequestError(
            "Which circuit? For example: history PLANT001/CIRCUIT01 (or add a count: … 20)."
        )
    if len(words) > 2 or (len(words) == 2 and not _COUNT.match(words[1])):
        raise HistoryRequestError(
            "history takes one circuit and an optional count, e.g. history PLANT001/CIRCUIT01 20."
        )
    circuit = words[0].upper()
    if len(circuit) > 128:
        raise HistoryRequestError("That circuit name is too long (at most 128 characters).")
    limit = int(words[1]) if len(words) == 2 else DEFAULT_ATTEMPTS
    if not 1 <= limit <= MAX_ATTEMPTS:
        raise HistoryRequestError(f"Ask for 1 to {MAX_ATTEMPTS} attempts.")
    return HistoryRequest(circuit, limit)


@dataclass(frozen=True, slots=True)
class RetryRequest:
    """Someone queued the circuit again (from the audit trail): who and when."""

    at: datetime
    by: str


@dataclass(frozen=True, slots=True)
class Attempt:
    job: TrainingJob
    duration: timedelta | None
    # Why this attempt ran: "first run", "automatic retry", or the person who retried.
    trigger: str


@dataclass(frozen=True, slots=True)
class CircuitHistory:
    circuit: str
    attempts: tuple[Attempt, ...]  # newest first

    @property
    def finished(self) -> tuple[Attempt, ...]:
        return tuple(a for a in self.attempts if a.job.state.is_terminal)

    @property
    def median_duration(self) -> timedelta | None:
        done = [a.duration for a in self.attempts if a.job.state == JobState.COMPLETED]
        known = [d.total_seconds() for d in done if d is not None]
        return timedelta(seconds=statistics.median(known)) if known else None

    @property
    def success_rate(self) -> float | None:
        finished = self.finished
        if not finished:
            return None
        return sum(a.job.state == JobState.COMPLETED for a in finished) / len(finished)


def duration_of(job: TrainingJob, now: datetime) -> timedelta | None:
    """Run time: start to end, or to now while running; None before it started."""
    if job.started_at is None:
        return None
    end = job.ended_at or (now if job.state == JobState.RUNNING else None)
    return max(end - job.started_at, timedelta(0)) if end is not None else None


def _trigger(
    job: TrainingJob, previous: TrainingJob | None, retries: Sequence[RetryRequest]
) -> str:
    if job.attempt <= 1:
        return "first run"
    # The latest person who asked between the previous attempt and this one.
    since = (previous.created_at or previous.started_at) if previous is not None else None
    until = job.created_at or job.started_at
    asked = [
        r for r in retries if (since is None or r.at >= since) and (until is None or r.at <= until)
    ]
    return f"retried by {max(asked, key=lambda r: r.at).by}" if asked else "automatic retry"


def build_history(
    circuit: str,
    jobs: Sequence[TrainingJob],
    retries: Sequence[RetryRequest],
    now: datetime,
) -> CircuitHistory:
    """`jobs` newest first (the store's order); each attempt with its duration and trigger."""
    ordered = list(jobs)
    attempts = []
    for index, job in enumerate(ordered):
        previous = ordered[index + 1] if index + 1 < len(ordered) else None
        attempts.append(Attempt(job, duration_of(job, now), _trigger(job, previous, retries)))
    return CircuitHistory(circuit.upper(), tuple(attempts))
