"""Benchmark: how long a burst of alerts takes to drain under Teams' limits (simulated clock).

All alerts arrive at once; each is booked with `SendPacer.next_slot` / `record` in event
order. Prints the simulated drain time (last send minus arrival), the lower bound the limits
allow, and the real CPU time the pacer spent booking. The run fails (exit 1) if an alert
gets no slot or two, the booked slots break a limit (per conversation or per tenant), or
anything is logged at WARNING or above while booking.
Run with `.venv/bin/python bench/pacing.py`.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.run_checks import RunChecks
from monitoring.pacing import (
    TEAMS_CONVERSATION_LIMITS,
    TEAMS_TENANT_LIMITS,
    SendPacer,
    SlidingWindowLimit,
)

START = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
TENANT = "tenant"


def lower_bound(sends: int, limits: tuple[SlidingWindowLimit, ...]) -> timedelta:
    """Each limit alone needs ceil(n / count) - 1 full windows between first and last send."""
    return max(
        (lim.per * (math.ceil(sends / lim.count) - 1) for lim in limits), default=timedelta(0)
    )


def broken_limits(
    slots: Sequence[datetime], limits: tuple[SlidingWindowLimit, ...], where: str
) -> list[str]:
    """Each limit whose `count + 1` sends fall within one interval of its length."""
    ordered = sorted(slots)
    broken = []
    for limit in limits:
        for i in range(limit.count, len(ordered)):
            if ordered[i] - ordered[i - limit.count] < limit.per:
                broken.append(
                    f"{limit.count + 1} sends to {where} within {limit.per.total_seconds():g} s"
                    f" at {ordered[i].isoformat()}"
                )
                break
    return broken


def drain(alerts: int, conversations: int, checks: RunChecks) -> tuple[timedelta, timedelta, float]:
    pacer = SendPacer()
    last = START
    booked: dict[str, list[datetime]] = {}
    began = time.perf_counter()
    # Round-robin: alert i concerns conversation i % conversations, in arrival order.
    with checks.timed():
        for i in range(alerts):
            conversation = f"c{i % conversations}"
            slot = pacer.next_slot(conversation, TENANT, START)
            pacer.record(conversation, TENANT, slot)
            booked.setdefault(conversation, []).append(slot)
            last = max(last, slot)
    cpu = time.perf_counter() - began
    every = [slot for slots in booked.values() for slot in slots]
    checks.require(len(every) == alerts, f"{alerts} alerts but {len(every)} slots booked")
    for conversation, slots in booked.items():
        for problem in broken_limits(slots, TEAMS_CONVERSATION_LIMITS, conversation):
            checks.require(False, problem)
    for problem in broken_limits(every, TEAMS_TENANT_LIMITS, "the tenant"):
        checks.require(False, problem)
    per_conversation = lower_bound(math.ceil(alerts / conversations), TEAMS_CONVERSATION_LIMITS)
    bound = max(per_conversation, lower_bound(alerts, TEAMS_TENANT_LIMITS))
    return last - START, bound, cpu


def main() -> None:
    checks = RunChecks("pacing")
    print(f"{'alerts':>7} {'convs':>6} {'drain s':>9} {'bound s':>9} {'ratio':>6} {'cpu ms':>8}")
    for alerts, conversations in [(100, 1), (1000, 1), (100, 100), (1000, 100)]:
        took, bound, cpu = drain(alerts, conversations, checks)
        ratio = took / bound if bound else 1.0
        print(
            f"{alerts:>7} {conversations:>6} {took.total_seconds():>9.1f} "
            f"{bound.total_seconds():>9.1f} {ratio:>6.2f} {cpu * 1000:>8.1f}"
        )
    sys.exit(checks.exit_code())


if __name__ == "__main__":
    main()
