"""Benchmark: how long a burst of alerts takes to drain under Teams' limits (simulated clock).

All alerts arrive at once; each is booked with `SendPacer.next_slot` / `record` in event
order. Prints the simulated drain time (last send minus arrival), the lower bound the limits
allow, and the real CPU time the pacer spent booking.
Run with `.venv/bin/python bench/pacing.py`.
"""

from __future__ import annotations

import math
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

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


def drain(alerts: int, conversations: int) -> tuple[timedelta, timedelta, float]:
    pacer = SendPacer()
    last = START
    began = time.perf_counter()
    # Round-robin: alert i concerns conversation i % conversations, in arrival order.
    for i in range(alerts):
        conversation = f"c{i % conversations}"
        slot = pacer.next_slot(conversation, TENANT, START)
        pacer.record(conversation, TENANT, slot)
        last = max(last, slot)
    cpu = time.perf_counter() - began
    per_conversation = lower_bound(math.ceil(alerts / conversations), TEAMS_CONVERSATION_LIMITS)
    bound = max(per_conversation, lower_bound(alerts, TEAMS_TENANT_LIMITS))
    return last - START, bound, cpu


def main() -> None:
    print(f"{'alerts':>7} {'convs':>6} {'drain s':>9} {'bound s':>9} {'ratio':>6} {'cpu ms':>8}")
    for alerts, conversations in [(100, 1), (1000, 1), (100, 100), (1000, 100)]:
        took, bound, cpu = drain(alerts, conversations)
        ratio = took / bound if bound else 1.0
        print(
            f"{alerts:>7} {conversations:>6} {took.total_seconds():>9.1f} "
            f"{bound.total_seconds():>9.1f} {ratio:>6.2f} {cpu * 1000:>8.1f}"
        )


if __name__ == "__main__":
    main()
