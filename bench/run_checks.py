"""What must hold for a benchmark's figures to count, and a non-zero exit when it does not.

A benchmark that times an error path prints plausible figures; these checks make it
fail instead. Each benchmark records, during its timed part, the log records at WARNING
or above, every answer that should have been 2xx, and the items it expected against the
items it saw (lost or duplicated). Timings never fail a run: only correctness does.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TextIO

from aiohttp import web

from tests.standins.connector import ConnectorStandIn

# At most this many examples of each kind of problem are printed.
_EXAMPLES = 5


class _Collect(logging.Handler):
    def __init__(self, into: list[logging.LogRecord]) -> None:
        super().__init__(logging.WARNING)
        self._into = into

    def emit(self, record: logging.LogRecord) -> None:
        self._into.append(record)


@dataclass
class RunChecks:
    """Problems found in one benchmark run; empty means its figures may be printed."""

    name: str
    warnings: list[logging.LogRecord] = field(default_factory=list)
    bad_replies: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    other: list[str] = field(default_factory=list)

    @contextmanager
    def timed(self) -> Iterator[None]:
        """Collect every log record at WARNING or above while the block runs."""
        handler = _Collect(self.warnings)
        root = logging.getLogger()
        root.addHandler(handler)
        try:
            yield
        finally:
            root.removeHandler(handler)

    def reply(self, status: int, what: str) -> None:
        """An HTTP answer that must be 2xx."""
        if not 200 <= status < 300:
            self.bad_replies.append(f"{what}: HTTP {status}")

    def items(self, expected: Iterable[str], seen: Iterable[str | None], what: str) -> None:
        """Every expected item seen exactly once (extra unknown items count as duplicates)."""
        wanted = set(expected)
        counts = Counter(item for item in seen if item is not None)
        self.lost.extend(f"{what} {item}" for item in sorted(wanted - set(counts)))
        self.duplicated.extend(
            f"{what} {item} ({n} times)" for item, n in sorted(counts.items()) if n > 1
        )
        self.duplicated.extend(
            f"{what} {item} (unexpected)" for item in counts if item not in wanted
        )

    def distinct(self, expected: int, seen: Iterable[str | None], what: str) -> None:
        """`expected` items, each seen once, when only their number is known beforehand."""
        keys = list(seen)
        counts = Counter(key for key in keys if key is not None)
        if None in keys:
            self.other.append(f"{keys.count(None)} {what} without a key")
        if len(counts) < expected:
            self.lost.append(f"{expected - len(counts)} of {expected} {what}")
        self.duplicated.extend(
            f"{what} {key} ({n} times)" for key, n in sorted(counts.items()) if n > 1
        )
        if len(counts) > expected:
            self.duplicated.append(f"{len(counts) - expected} {what} more than expected")

    def require(self, condition: bool, problem: str) -> None:
        """Any other correctness condition of the run."""
        if not condition:
            self.other.append(problem)

    def problems(self) -> list[str]:
        found = []
        if self.warnings:
            found.append(
                _summary(
                    f"{len(self.warnings)} log records at WARNING or above",
                    [f"{r.levelname} {r.name}: {r.getMessage()}" for r in self.warnings],
                )
            )
        for label, entries in (
            ("non-2xx replies", self.bad_replies),
            ("lost", self.lost),
            ("duplicated", self.duplicated),
            ("failed checks", self.other),
        ):
            if entries:
                found.append(_summary(f"{len(entries)} {label}", entries))
        return found

    def exit_code(self, out: TextIO = sys.stderr) -> int:
        """0 when the run is sound; otherwise 1, after saying why on `out`."""
        found = self.problems()
        if not found:
            return 0
        print(f"{self.name}: FAILED, the figures above do not count:", file=out)
        for problem in found:
            print(f"  - {problem}", file=out)
        return 1


def _summary(headline: str, entries: list[str]) -> str:
    shown = "; ".join(entries[:_EXAMPLES])
    more = f"; … {len(entries) - _EXAMPLES} more" if len(entries) > _EXAMPLES else ""
    return f"{headline}: {shown}{more}"


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class AnsweringConnector(ConnectorStandIn):
    """The Bot Connector stand-in, also keeping the status of every answer it gave."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.answers: list[tuple[str, int]] = []
        self._answer_arrived: asyncio.Event | None = None

    def app(self) -> web.Application:
        app = super().app()

        @web.middleware
        async def keep_status(request: web.Request, handler: Handler) -> web.StreamResponse:
            try:
                response = await handler(request)
            except web.HTTPException as refusal:
                self._answered(request, refusal.status)
                raise
            self._answered(request, response.status)
            return response

        app.middlewares.append(keep_status)
        return app

    def _answered(self, request: web.Request, status: int) -> None:
        self.answers.append((f"{request.method} {request.path}", status))
        if self._answer_arrived is None:
            self._answer_arrived = asyncio.Event()
        self._answer_arrived.set()

    async def wait_answered(self, count: int, limit_s: float = 10.0) -> None:
        """Wait until at least `count` answers were given; the limit only guards a hang."""
        async with asyncio.timeout(limit_s):
            while len(self.answers) < count:
                if self._answer_arrived is None:
                    self._answer_arrived = asyncio.Event()
                self._answer_arrived.clear()
                await self._answer_arrived.wait()

    def check_answers(self, checks: RunChecks, since: int = 0) -> None:
        """Every answer from index `since` on must have been 2xx."""
        for what, status in self.answers[since:]:
            checks.reply(status, f"connector answered {what}")
