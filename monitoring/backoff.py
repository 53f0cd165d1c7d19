"""When a monitoring session checks its jobs again: exponential backoff with a cap and a max wait.

The documented schedule (variable group `mlops-pipeline-settings`): a session checks as soon as
it starts, then waits the poll interval (30 s), and the wait doubles after every check up to
the max delay (300 s): 30, 60, 120, 240, 300, 300, ... seconds. Polling stops once the max
wait (3 h) has passed since the session started; if that instant falls between two checks,
one last check happens exactly at it, so nothing is left unobserved for up to a whole delay.

A push (an Event Grid or Azure DevOps hook) or a state change seen by a check means the jobs
are moving: the session checks right away and the delays start again from the poll interval.
That is the same as a session start, except that the max wait keeps counting from the
original start, so activity can never keep a session alive forever.

Everything here is pure: time is passed in, nothing is stored. The engine persists a
`PollState` (or its columns) and asks the policy for the next one. Because the next delay is
computed from the stored count of checks, a policy built from changed settings takes effect
from the next computed delay, without replaying the past.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from config.settings import Settings


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    """How long a session waits between checks, and for how long it polls at all."""

    initial_s: float  # first delay, after the check made at the start (the poll interval)
    multiplier: float  # the delay is multiplied by this after each check
    max_delay_s: float  # no delay is ever longer than this
    max_wait_s: float  # polling ends this long after the session started

    def __post_init__(self) -> None:
        if not self.initial_s > 0:
            raise ValueError(f"initial_s must be positive, got {self.initial_s}")
        if not self.multiplier >= 1:
            raise ValueError(f"multiplier must be at least 1, got {self.multiplier}")
        if not self.max_delay_s > 0:
            raise ValueError(f"max_delay_s must be positive, got {self.max_delay_s}")
        if not self.max_wait_s > 0:
            raise ValueError(f"max_wait_s must be positive, got {self.max_wait_s}")

    @classmethod
    def from_settings(cls, settings: Settings) -> BackoffPolicy:
        return cls(
            initial_s=float(settings.monitoring_poll_interval_seconds),
            multiplier=float(settings.monitoring_backoff_multiplier),
            max_delay_s=float(settings.monitoring_max_delay_seconds),
            max_wait_s=float(settings.monitoring_max_wait_hours) * 3600.0,
        )

    def delay_after(self, checks_done: int) -> float:
        """Seconds to wait after the `checks_done`-th check (counted since start or activity).

        0 checks done means the first check is due immediately (0.0); after the first check
        the delay is the poll interval, then it grows by the multiplier up to the cap.
        """
        if checks_done < 0:
            raise ValueError(f"checks_done must not be negative, got {checks_done}")
        if checks_done == 0:
            return 0.0
        if self.initial_s >= self.max_delay_s:
            # A poll interval above the max delay is capped too: the cap always wins.
            return self.max_delay_s
        if self.multiplier == 1:
            return self.initial_s
        # Past this many steps the delay is capped anyway; stopping there keeps the power
        # from overflowing in sessions with very many checks.
        steps_to_cap = math.ceil(math.log(self.max_delay_s / self.initial_s, self.multiplier))
        step = min(checks_done - 1, steps_to_cap)
        return min(self.initial_s * self.multiplier**step, self.max_delay_s)

    def deadline(self, started_at: datetime) -> datetime:
        """The instant polling ends: the max wait after the session started."""
        return started_at + timedelta(seconds=self.max_wait_s)

    def next_check(
        self, started_at: datetime, last_check_at: datetime | None, checks_done: int
    ) -> datetime | None:
        """When the next check is due, or None once the max wait has been reached.

        `last_check_at` is None before the first check; the first check is then due at the
        session start. A delay that would end past the max wait is shortened so the final
        check happens exactly at the max-wait instant.
        """
        deadline = self.deadline(started_at)
        base = started_at if last_check_at is None else last_check_at
        if last_check_at is not None and last_check_at >= deadline:
            return None
        return min(base + timedelta(seconds=self.delay_after(checks_done)), deadline)

    def start(self, now: datetime) -> PollState:
        """A new session: the first check is due right away."""
        return PollState(started_at=now, checks_done=0, last_check_at=None, next_check_at=now)

    def checked(self, state: PollState, at: datetime) -> PollState:
        """The session made a check at `at`; its next check (or None) follows the policy."""
        checks_done = state.checks_done + 1
        return replace(
            state,
            checks_done=checks_done,
            last_check_at=at,
            next_check_at=self.next_check(state.started_at, at, checks_done),
        )

    def after_activity(self, state: PollState, now: datetime) -> PollState:
        """A push event or a state change: check now and restart the delays from the start.

        The max wait still counts from the session start; past it the session stays over
        (next check None) and the engine only records what the push said.
        """
        if state.next_check_at is None or now >= self.deadline(state.started_at):
            return replace(state, next_check_at=None)
        return replace(state, checks_done=0, next_check_at=now)

    def check_times(self, started_at: datetime) -> Iterator[datetime]:
        """Every check of an undisturbed session, from the start to the max-wait instant."""
        state = self.start(started_at)
        while state.next_check_at is not None:
            at = state.next_check_at
            yield at
            state = self.checked(state, at)


@dataclass(frozen=True, slots=True)
class PollState:
    """What a session stores about its polling; `next_check_at` None means the wait is over."""

    started_at: datetime
    checks_done: int  # since the start or the latest activity, whichever came last
    last_check_at: datetime | None
    next_check_at: datetime | None

    @property
    def finished(self) -> bool:
        """True once the max wait has been reached: no more checks will be scheduled."""
        return self.next_check_at is None
