"""Benchmark: 1,000 notifications to 100 conversations through the real delivery path.

The real dispatcher, living-card sender, ProactiveMessenger and CloudAdapter send to the
Bot Connector stand-in over loopback HTTP, on a SQLite file, under Teams' limits
(7/1 s, 8/2 s, 60/30 s, 1800/h per conversation, 50/s per tenant — the stand-in checks
them). Each notification is a card of its own (a deployment result), so one notification
is one request. Prints the drain time against the least the limits allow (the lower
bound of `bench/pacing.py`), and whether anything was lost or shown twice. The run fails
(exit 1) if a notification is lost or shown twice, a request beyond Teams' limits reached
the stand-in, the stand-in answered anything but 2xx, or anything was logged at WARNING
or above while delivering.

Run with `.venv/bin/python bench/notifications.py [--speed N] [--concurrency N]`;
`--speed` runs the clock N times faster than real time (the stand-in's windows shrink as
much), which measures the bot's own overhead rather than the limits; `--concurrency 1`
serves one conversation at a time. `cpu ms` is this process's CPU time per notification
(the stand-in's share included).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
import tempfile
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.pacing import lower_bound
from bench.run_checks import AnsweringConnector, RunChecks
from monitoring.pacing import TEAMS_CONVERSATION_LIMITS, TEAMS_TENANT_LIMITS
from store.conversations import ConversationStore
from store.database import Database
from store.monitoring import MonitoringStore, NewEvent, Observation
from tests.integration.delivery_worker import (
    SIM_EPOCH,
    FastClock,
    deliver_all,
    remember_conversation,
)
from tests.standins.connector import TEAMS_CONVERSATION_WINDOWS, TEAMS_TENANT_WINDOWS


async def seed(db: Database, url: str, notifications: int, conversations: int) -> None:
    store = ConversationStore(db)
    for k in range(conversations):
        await remember_conversation(store, f"19:bench-{k}@thread.tacv2", "channel", url)
    events = [
        NewEvent(
            key=f"bench/{i:05d}",
            kind="deployment_completed",
            payload={
                "conversation": f"19:bench-{i % conversations}@thread.tacv2",
                "environment": "dev",
                "pipeline": "deploy",
                "run_id": i,
            },
        )
        for i in range(notifications)
    ]
    await MonitoringStore(db).apply(Observation(now=SIM_EPOCH, events=events))


async def run(
    notifications: int,
    conversations: int,
    speed: float,
    checks: RunChecks,
    concurrency: int = 8,
) -> list[str]:
    connector = AnsweringConnector(
        conversation_windows=TEAMS_CONVERSATION_WINDOWS,
        tenant_windows=TEAMS_TENANT_WINDOWS,
        time_scale=speed,
    )
    await connector.start()
    folder = Path(tempfile.mkdtemp(prefix="mlbot-bench-"))
    url = f"sqlite+aiosqlite:///{folder}/bench.db"
    db = Database(url)
    await db.migrate()
    await seed(db, connector.url, notifications, conversations)
    await db.dispose()
    began, cpu_began = time.monotonic(), time.process_time()
    with checks.timed():
        await deliver_all(url, FastClock(time.time(), speed), concurrency)
    took = timedelta(seconds=(time.monotonic() - began) * speed)  # in simulated time
    # CPU of this process per notification: the bot's, plus the stand-in answering it.
    cpu_ms = (time.process_time() - cpu_began) * 1000 / max(notifications, 1)
    await connector.stop()
    connector.check_answers(checks)
    checks.distinct(
        notifications, (m.client_key for m in connector.messages.values()), "notifications"
    )
    checks.require(
        not connector.violations,
        f"{len(connector.violations)} requests beyond Teams' limits, e.g. "
        + "; ".join(connector.violations[:3]),
    )

    keys = Counter(m.client_key for m in connector.messages.values())
    lost = notifications - len(keys)
    duplicated = sum(n - 1 for n in keys.values())
    per_conversation = lower_bound(
        math.ceil(notifications / conversations), TEAMS_CONVERSATION_LIMITS
    )
    bound = max(per_conversation, lower_bound(notifications, TEAMS_TENANT_LIMITS))
    ratio = took / bound if bound else 1.0
    return [
        f"{notifications:>6} {conversations:>6} {concurrency:>5} {speed:>6.0f} "
        f"{len(connector.calls):>9} "
        f"{took.total_seconds():>8.1f} {bound.total_seconds():>8.1f} {ratio:>6.2f} "
        f"{lost:>5} {duplicated:>5} {len(connector.violations):>10} {cpu_ms:>7.1f}"
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notifications", type=int, default=1000)
    parser.add_argument("--conversations", type=int, default=100)
    parser.add_argument("--speed", type=float, default=1.0)
    parser.add_argument(
        "--concurrency", type=int, default=8, help="conversations served at once (1: one by one)"
    )
    args = parser.parse_args()
    print(
        f"{'notes':>6} {'convs':>6} {'conc':>5} {'speed':>6} {'requests':>9} {'took s':>8} "
        f"{'bound s':>8} {'ratio':>6} {'lost':>5} {'dupes':>5} {'violations':>10} "
        f"{'cpu ms':>7}"
    )
    checks = RunChecks("notifications")
    lines = asyncio.run(
        run(args.notifications, args.conversations, args.speed, checks, args.concurrency)
    )
    for line in lines:
        print(line)
    sys.exit(checks.exit_code())


if __name__ == "__main__":
    main()
