"""Simulated time for the sandbox: a scaled wall clock and a hand-driven one for tests.

A scenario describes hours of training; `SimClock(speed=60)` plays an hour of it in a
minute. Everything the sandbox stamps (job start and end times, pipeline run dates) is
read from one of these clocks, so the emulated services and whoever watches them agree
on what time it is.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import Any, Protocol


class SandboxClock(Protocol):
    """What the sandbox needs from a clock."""

    @property
    def start(self) -> dt.datetime: ...

    @property
    def speed(self) -> float: ...

    def now(self) -> dt.datetime: ...


def _aware(moment: dt.datetime | None) -> dt.datetime:
    if moment is None:
        return dt.datetime.now(dt.UTC)
    # Naive datetimes are read as UTC, as Azure does.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


class SimClock:
    """Advances `speed` simulated seconds per real second from `start` (default: now).

    `origin` is the reading of `monotonic` at which the clock shows `start` (default: the
    reading at creation). With `monotonic=time.time`, clocks in two processes given the
    same start, speed and origin agree without talking to each other.
    """

    def __init__(
        self,
        speed: float = 1.0,
        start: dt.datetime | None = None,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        origin: float | None = None,
    ) -> None:
        if not speed > 0:
            raise ValueError(f"speed must be a positive number, not {speed!r}")
        self._speed = float(speed)
        self._start = _aware(start)
        self._monotonic = monotonic
        self._origin = monotonic() if origin is None else origin

    @property
    def start(self) -> dt.datetime:
        return self._start

    @property
    def origin(self) -> float:
        return self._origin

    @property
    def speed(self) -> float:
        return self._speed

    def now(self) -> dt.datetime:
        elapsed_real = self._monotonic() - self._origin
        return self._start + dt.timedelta(seconds=elapsed_real * self._speed)


class ManualClock:
    """A clock that moves only when told to (`advance`), for tests and benchmarks."""

    def __init__(self, start: dt.datetime | None = None) -> None:
        self._start = _aware(start)
        self._now = self._start

    @property
    def start(self) -> dt.datetime:
        return self._start

    @property
    def speed(self) -> float:
        return 0.0  # time stands still between calls to advance()

    def now(self) -> dt.datetime:
        return self._now

    def advance(self, seconds: float) -> dt.datetime:
        if seconds < 0:
            raise ValueError("a clock cannot go backwards")
        self._now += dt.timedelta(seconds=seconds)
        return self._now


def describe(clock: SandboxClock) -> dict[str, Any]:
    """Plain data about a clock, for inspection endpoints."""
    now = clock.now()
    return {
        "now": now.isoformat(),
        "start": clock.start.isoformat(),
        "speed": clock.speed,
        "elapsed_s": (now - clock.start).total_seconds(),
    }
