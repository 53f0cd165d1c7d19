"""Requests to many conversations at once still keep every window, wherever they arrive."""

from __future__ import annotations

import asyncio
import random
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta

from monitoring.pacing import TEAMS_CONVERSATION_LIMITS, TEAMS_TENANT_LIMITS, SendPacer
from monitoring.send_gate import TENANT, SendGate

T0 = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)


def test_requests_under_way_count_in_every_window() -> None:
    pacer = SendPacer()
    assert pacer.earliest("c", TENANT, T0, tenant_in_flight=49) == T0
    # The whole tenant budget is under way: only a completion can free a turn.
    assert pacer.earliest("c", TENANT, T0, tenant_in_flight=50) is None
    assert pacer.earliest("c", TENANT, T0, in_flight=7) is None
    for n in range(6):
        pacer.record("c", TENANT, T0 + timedelta(milliseconds=n))
    # Six sent and one under way fill the 7-per-second window until the first leaves it.
    assert pacer.earliest("c", TENANT, T0, in_flight=1) == T0 + timedelta(seconds=1)
    assert pacer.earliest("c", TENANT, T0) == T0 + timedelta(milliseconds=5)
    # Without a tenant, only the conversation's own limits count.
    assert pacer.earliest("other", None, T0, tenant_in_flight=50) == T0


class ScaledClock:
    """Simulated time running `speed` times faster than the wall clock."""

    def __init__(self, speed: float) -> None:
        self.speed = speed
        self.began = time.monotonic()

    def __call__(self) -> datetime:
        return T0 + timedelta(seconds=(time.monotonic() - self.began) * self.speed)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(seconds, 0.0) / self.speed)


def most_that_could_meet(spans: list[tuple[datetime, datetime]], per: timedelta) -> int:
    """The largest number of requests that could arrive inside one window of length `per`,
    each arriving anywhere between when it was let go and when it completed."""
    best = 0
    for start, _ in spans:
        # A window ending at `start`... or later: the densest one ends at some request's start.
        best = max(best, sum(1 for s, e in spans if s <= start and e > start - per))
    return best


async def test_concurrent_requests_never_overfill_a_window() -> None:
    clock = ScaledClock(speed=20)
    gate = SendGate(SendPacer(), clock, sleep=clock.sleep)
    rng = random.Random(11)
    spans: dict[str, list[tuple[datetime, datetime]]] = defaultdict(list)
    under_way = 0
    most_under_way = 0

    async def conversation(name: str, requests: int) -> None:
        nonlocal under_way, most_under_way
        for _ in range(requests):
            async with gate.turn(name):
                start = clock()
                under_way += 1
                most_under_way = max(most_under_way, under_way)
                await asyncio.sleep(rng.uniform(0, 0.004))  # the request on the wire
                under_way -= 1
            spans[name].append((start, clock()))

    await asyncio.gather(*(conversation(f"c{k}", 12) for k in range(15)))

    everything = [span for spans_of in spans.values() for span in spans_of]
    assert len(everything) == 180
    assert most_under_way > 1  # different conversations really overlapped
    for limit in TEAMS_TENANT_LIMITS:
        assert most_that_could_meet(everything, limit.per) <= limit.count
    for spans_of in spans.values():
        for limit in TEAMS_CONVERSATION_LIMITS:
            assert most_that_could_meet(spans_of, limit.per) <= limit.count
