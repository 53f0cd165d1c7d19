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

Two cases run by default: 1,000 notifications to 100 conversations (10 each) and 10,000
to 1,000 conversations (10 each); `--cases 1000x100` picks cases (notifications x
conversations). `--speed` runs the clock N times faster than real time (the stand-in's
windows shrink as much), which measures the bot's own overhead rather than the limits;
`--concurrency 1` serves one conversation at a time.

The stand-in runs on a thread and event loop of its own, so the CPU it spends answering
can be told apart from the bot's: `bot ms` is the CPU time per notification of
everything else in this process (the delivery worker, its SQLite thread, the HTTP
client), `all ms` includes the stand-in. `peak MiB` is the process's peak resident set
after the case (the stand-in's copy of every message included).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import resource
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Coroutine
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

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

T = TypeVar("T")


class StandInThread:
    """The connector stand-in served from its own thread and event loop.

    Its CPU time is then its thread's (`time.thread_time` there), and the rest of the
    process's CPU time is the bot's.
    """

    def __init__(self, connector: AnsweringConnector) -> None:
        self.connector = connector
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def start(self) -> str:
        self._thread.start()
        return self._call(self.connector.start())

    def cpu_s(self) -> float:
        """CPU time the stand-in's thread has used so far."""
        return self._call(_thread_time())

    def stop(self) -> None:
        self._call(self.connector.stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def _call(self, work: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(work, self._loop).result()


async def _thread_time() -> float:
    return time.thread_time()


def peak_rss_mib() -> float:
    """This process's peak resident set so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


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
    stand_in = StandInThread(connector)
    stand_in.start()
    folder = Path(tempfile.mkdtemp(prefix="mlbot-bench-"))
    url = f"sqlite+aiosqlite:///{folder}/bench.db"
    db = Database(url)
    await db.migrate()
    await seed(db, connector.url, notifications, conversations)
    await db.dispose()
    began, cpu_began, stand_in_began = time.monotonic(), time.process_time(), stand_in.cpu_s()
    with checks.timed():
        await deliver_all(url, FastClock(time.time(), speed), concurrency)
    took = timedelta(seconds=(time.monotonic() - began) * speed)  # in simulated time
    # CPU per notification of the whole process, and of all but the stand-in's thread.
    all_cpu_s = time.process_time() - cpu_began
    bot_cpu_s = all_cpu_s - (stand_in.cpu_s() - stand_in_began)
    per = 1000 / max(notifications, 1)
    stand_in.stop()
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
        f"{lost:>5} {duplicated:>5} {len(connector.violations):>10} "
        f"{bot_cpu_s * per:>7.2f} {all_cpu_s * per:>7.2f} {peak_rss_mib():>8.1f}"
    ]


def parse_cases(text: str) -> list[tuple[int, int]]:
    """`1000x100,10000x1000` -> [(1000, 100), (10000, 1000)] (notifications, conversations)."""
    cases = []
    for part in text.split(","):
        notifications, _, conversations = part.strip().partition("x")
        cases.append((int(notifications), int(conversations)))
    return cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--cases",
        default="1000x100,10000x1000",
        help="notifications x conversations, comma-separated",
    )
    parser.add_argument("--speed", type=float, default=1.0)
    parser.add_argument(
        "--concurrency", type=int, default=8, help="conversations served at once (1: one by one)"
    )
    args = parser.parse_args()
    print(
        f"{'notes':>6} {'convs':>6} {'conc':>5} {'speed':>6} {'requests':>9} {'took s':>8} "
        f"{'bound s':>8} {'ratio':>6} {'lost':>5} {'dupes':>5} {'violations':>10} "
        f"{'bot ms':>7} {'all ms':>7} {'peak MiB':>8}",
        flush=True,
    )
    failed = 0
    for notifications, conversations in parse_cases(args.cases):
        checks = RunChecks(f"notifications {notifications}x{conversations}")
        lines = asyncio.run(run(notifications, conversations, args.speed, checks, args.concurrency))
        for line in lines:
            print(line, flush=True)
        failed = max(failed, checks.exit_code())
    sys.exit(failed)


if __name__ == "__main__":
    main()
