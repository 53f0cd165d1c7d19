"""Delivery survives `kill -9` and a faulty connector: nothing lost, nothing shown twice.

A burst of 200 events is aimed at 10 conversations (5 team channels, 5 personal chats):
per conversation one session with 5 circuits (started, completed or failed, still
running) and 5 deployments. The real delivery worker (dispatcher, living cards,
ProactiveMessenger, CloudAdapter) sends them to the connector stand-in, on a clock ten times
faster than real time so Teams' windows and Retry-After take a tenth of the wall time.

"Exactly once", precisely: every message mlbot means to create has a key
(`channelData.clientActivityID`): one session card per session and conversation, one
reply per failure or reminder, one card per deployment. In the stand-in's record of what
users see, each key is created (POST) exactly once; updates (PUT) of that activity are
the same message. Every event's delivery is recorded as sent, and per conversation the
messages were created in event order.

The Bot Connector assigns activity ids and has no idempotent create, so one window cannot
be closed: a kill after the connector accepted a POST and before its id was committed.
The worker then posts again and counts the row as uncertain; a key may only repeat if
the store marked it so, and at most one per kill.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from store.database import Database
from tests.integration.delivery_burst import check_outcome, seed
from tests.integration.delivery_worker import FastClock, deliver_all
from tests.standins.connector import (
    TEAMS_CONVERSATION_WINDOWS,
    TEAMS_TENANT_WINDOWS,
    ConnectorStandIn,
    Faults,
)

pytestmark = pytest.mark.slow  # delivery workers run as separate processes

SPEED = 10.0
KILLS = 5
ROOT = Path(__file__).resolve().parents[2]
# Commits dominate the worker's time; a RAM-backed folder keeps the file short.
SHM = Path("/dev/shm")


@pytest.fixture
def db_folder(tmp_path: Path) -> Iterator[Path]:
    if not (SHM.is_dir() and os.access(SHM, os.W_OK)):
        yield tmp_path
        return
    folder = Path(tempfile.mkdtemp(prefix="mlbot-delivery-", dir=SHM))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
async def stand_in() -> Any:
    connector = ConnectorStandIn(
        conversation_windows=TEAMS_CONVERSATION_WINDOWS,
        tenant_windows=TEAMS_TENANT_WINDOWS,
        time_scale=SPEED,
    )
    await connector.start()
    yield connector
    await connector.stop()


async def test_kill_9_at_random_points_neither_loses_nor_repeats(
    db_folder: Path, stand_in: ConnectorStandIn
) -> None:
    db_url = f"sqlite+aiosqlite:///{db_folder}/crash.db"
    db = Database(db_url)
    await db.migrate()
    await seed(db, stand_in.url)
    epoch = time.time()
    rng = random.Random(20261129)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "tests.integration.delivery_worker", db_url, str(SPEED)]
    kills = 0
    for run in range(KILLS + 1):
        worker = await asyncio.create_subprocess_exec(*command, str(epoch), cwd=ROOT, env=env)
        if run < KILLS:
            # A random point: after a random number of further requests, plus a little.
            target = len(stand_in.calls) + rng.randint(5, 40)
            deadline = time.monotonic() + 60
            while len(stand_in.calls) < target and worker.returncode is None:
                assert time.monotonic() < deadline, "the worker made no progress"
                await asyncio.sleep(0.002)
            await asyncio.sleep(rng.uniform(0, 0.02))
            if worker.returncode is None:
                worker.send_signal(signal.SIGKILL)
                kills += 1
            await worker.wait()
        else:
            assert await asyncio.wait_for(worker.wait(), 60) == 0
    assert kills >= 3  # most kills landed while the burst was being delivered
    await check_outcome(db, stand_in, kills)
    await db.dispose()


async def test_throttling_and_server_errors_lose_nothing_and_keep_the_limits(
    db_folder: Path, stand_in: ConnectorStandIn
) -> None:
    # One request in five is refused: 429 with Retry-After, or 500/502/503.
    stand_in.faults = Faults(rate=0.2, retry_after_s="1", seed=7)
    db_url = f"sqlite+aiosqlite:///{db_folder}/faults.db"
    db = Database(db_url)
    await db.migrate()
    await seed(db, stand_in.url)
    await asyncio.wait_for(deliver_all(db_url, FastClock(time.time(), SPEED)), 60)
    assert stand_in.refused > 20  # the faults really happened
    await check_outcome(db, stand_in, kills=0)
    await db.dispose()
