"""The timer drives the health watch, escalations and digests as one group."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest

from monitoring.scheduler import TimedGroup

T = datetime(2026, 12, 8, tzinfo=UTC)


class Pass:
    def __init__(self, due: datetime | None, done: int = 1, fails: bool = False) -> None:
        self.due, self.done, self.fails, self.ticks = due, done, fails, 0

    async def tick(self) -> int:
        self.ticks += 1
        if self.fails:
            raise RuntimeError("store unavailable")
        return self.done

    async def next_due_at(self) -> datetime | None:
        return self.due


async def test_one_failing_pass_does_not_stop_the_others(caplog: pytest.LogCaptureFixture) -> None:
    broken, fine = Pass(None, fails=True), Pass(T, done=2)
    group = TimedGroup(broken, None, fine)
    with caplog.at_level(logging.ERROR):
        assert await group.tick() == 2
    assert broken.ticks == 1 and fine.ticks == 1
    assert "Pass failed" in caplog.text


async def test_the_group_is_due_when_its_first_member_is() -> None:
    later = T.replace(hour=5)
    assert await TimedGroup(Pass(later), Pass(T), Pass(None)).next_due_at() == T
    assert await TimedGroup(Pass(None)).next_due_at() is None
