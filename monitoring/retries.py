"""Automatic retries of failed circuits, and circuit lists as operators type them.

A failed circuit is trained again through the training pipeline, whose `manualCircuits`
variable takes the circuits comma-joined without spaces (`PLANT001/CIRCUIT01,PLANT002/CIRCUIT02`).
Each circuit gets at most `max_retries` retries, so at most `1 + max_retries` attempts.

Retries go out as one batch per round: the decision waits until every circuit of the session
has finished its current attempt, then queues all the failed ones in a single pipeline run
rather than one run per circuit.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from domain.jobs import CIRCUIT_PATTERN, JobState

_SEPARATORS = re.compile(r"[,\s]+")  # \s also covers the non-breaking spaces Teams sends


class CircuitListError(ValueError):
    """A circuit list that cannot be used; the message is meant for the person who typed it."""

    def __init__(self, message: str, invalid: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.invalid = invalid


def parse_circuits(text: str) -> tuple[str, ...]:
    """Circuits from text like `PLANT001/CIRCUIT01, PLANT002/CIRCUIT02`, in the order typed.

    Commas, spaces or both separate them; repeats are dropped. Any malformed entry makes the
    whole list an error naming every malformed entry, so nothing is queued by half.
    """
    items = [item for item in _SEPARATORS.split(text) if item]
    if not items:
        raise CircuitListError("No circuits given. Expected a list like PLANT001/CIRCUIT01.")
    return _validated(items)


def format_manual_circuits(circuits: Iterable[str]) -> str:
    """The `manualCircuits` value: circuits comma-joined without spaces, repeats dropped."""
    items = [circuit.strip() for circuit in circuits]
    if not items:
        raise CircuitListError("No circuits to queue.")
    return ",".join(_validated(items))


def _validated(items: list[str]) -> tuple[str, ...]:
    invalid = tuple(dict.fromkeys(item for item in items if not CIRCUIT_PATTERN.fullmatch(item)))
    if invalid:
        names = ", ".join(f"'{item}'" for item in invalid)
        noun = "is not a circuit" if len(invalid) == 1 else "are not circuits"
        raise CircuitListError(
            f"{names} {noun}: expected <PLANT>/<CIRCUIT> using letters, digits, '_' or '-', "
            "e.g. PLANT001/CIRCUIT01.",
            invalid,
        )
    return tuple(dict.fromkeys(items))


def max_attempts(max_retries: int) -> int:
    """Attempts a circuit may make in total: the first one plus its retries."""
    if max_retries < 0:
        raise ValueError(f"max_retries must not be negative, got {max_retries}")
    return 1 + max_retries


@dataclass(frozen=True, slots=True)
class CircuitAttempts:
    """A circuit in a session: how many attempts it has made and how the latest one stands."""

    circuit: str
    attempts: int  # attempts made so far, the latest included (1 for the first run)
    state: JobState  # the latest attempt's state
    timed_out: bool = False  # the latest attempt ran past the per-attempt timeout

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"{self.circuit}: attempts must be at least 1, got {self.attempts}")

    @property
    def failed(self) -> bool:
        """The latest attempt counts as failed: it failed, or it timed out without completing.

        A job somebody canceled is not failed: a person stopped it on purpose.
        """
        return self.state is JobState.FAILED or (
            self.timed_out and self.state is not JobState.COMPLETED
        )

    @property
    def in_flight(self) -> bool:
        """The latest attempt has not finished yet (a timed-out attempt has, for retries)."""
        return not self.state.is_terminal and not self.failed


@dataclass(frozen=True, slots=True)
class RetryPlan:
    """What to do about a session's failed circuits now."""

    retry: tuple[str, ...]  # queue these again, in one pipeline run (sorted, unique)
    exhausted: tuple[str, ...]  # failed with no retries left (sorted, unique)
    waiting_for: tuple[str, ...]  # still running: the batch waits for them (sorted, unique)

    @property
    def manual_circuits(self) -> str:
        """The `manualCircuits` value for the retry run ("" when nothing is retried).

        A circuit tag that is not `<PLANT>/<CIRCUIT>` raises `CircuitListError` rather than
        corrupting the comma-separated variable.
        """
        return format_manual_circuits(self.retry) if self.retry else ""


def plan_retries(circuits: Iterable[CircuitAttempts], max_retries: int) -> RetryPlan:
    """Decide the retry batch for a session.

    A circuit listed more than once is judged by its entry with the most attempts (the latest
    attempt); on a tie the entry given last wins. While any circuit is still running, nothing
    is retried yet; circuits with no retries left are reported either way.
    """
    limit = max_attempts(max_retries)
    latest: dict[str, CircuitAttempts] = {}
    for item in circuits:
        known = latest.get(item.circuit)
        if known is None or item.attempts >= known.attempts:
            latest[item.circuit] = item
    failed = [item for item in latest.values() if item.failed]
    waiting_for = tuple(sorted(item.circuit for item in latest.values() if item.in_flight))
    exhausted = tuple(sorted(item.circuit for item in failed if item.attempts >= limit))
    retry: tuple[str, ...] = ()
    if not waiting_for:
        retry = tuple(sorted(item.circuit for item in failed if item.attempts < limit))
    return RetryPlan(retry=retry, exhausted=exhausted, waiting_for=waiting_for)
