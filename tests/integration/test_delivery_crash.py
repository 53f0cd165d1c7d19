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
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from monitoring.jobs import JobState, TrainingJob
from store.conversations import ConversationStore
from store.database import Database
from store.deliveries import DeliveryStore
from store.monitoring import JobProgress, MonitoringStore, NewEvent, Observation
from store.posted_activities import PostedActivityStore
from tests.integration.delivery_worker import (
    SIM_EPOCH,
    FastClock,
    deliver_all,
    remember_conversation,
)
from tests.standins.connector import (
    TEAMS_CONVERSATION_WINDOWS,
    TEAMS_TENANT_WINDOWS,
    ConnectorStandIn,
    Faults,
)

pytestmark = pytest.mark.slow  # delivery workers run as separate processes

SPEED = 10.0
CONVERSATIONS = 10
EVENTS = 200
CIRCUITS = 5
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


def conversation_id(k: int) -> str:
    return f"19:channel-{k}@thread.tacv2" if k % 2 == 0 else f"a:personal-{k}"


async def seed(db: Database, service_url: str) -> None:
    conversations = ConversationStore(db)
    for k in range(CONVERSATIONS):
        kind = "channel" if k % 2 == 0 else "personal"
        await remember_conversation(conversations, conversation_id(k), kind, service_url)
    store = MonitoringStore(db)
    sessions = {}
    for k in range(CONVERSATIONS):
        session = await store.open_session(
            kind="experiment", key=f"experiment:ws:exp-{k}", title=f"exp-{k}", now=SIM_EPOCH
        )
        sessions[k] = session.id
        jobs = [
            JobProgress(
                job=TrainingJob(
                    workspace="ws",
                    name=f"job-{k}-{c}",
                    display_name=f"train PLANT{k:03d}/CIRCUIT{c:02d}",
                    experiment=f"exp-{k}",
                    circuit=f"PLANT{k:03d}/CIRCUIT{c:02d}",
                    status=("Completed", "Failed")[c % 2],
                    state=(JobState.COMPLETED, JobState.FAILED)[c % 2],
                    started_at=SIM_EPOCH,
                    ended_at=SIM_EPOCH + timedelta(minutes=10),
                ),
                session_id=session.id,
                running_since=SIM_EPOCH,
                announced_start=True,
                timed_out=False,
                reminders_sent=0,
            )
            for c in range(CIRCUITS)
        ]
        await store.apply(Observation(now=SIM_EPOCH, jobs=jobs))
    # Interleaved, as a burst arrives: event i is for conversation i % 10.
    for i in range(EVENTS):
        k, step = i % CONVERSATIONS, i // CONVERSATIONS
        c = step % CIRCUITS
        circuit = f"PLANT{k:03d}/CIRCUIT{c:02d}"
        phase = step // CIRCUITS
        kind = (
            "training_started",
            ("training_completed", "training_failed")[c % 2],
            "long_running",
            "deployment_completed",
        )[phase]
        payload: dict[str, Any] = {"conversation": conversation_id(k), "circuit": circuit}
        if kind == "training_failed":
            payload["error_summary"] = f"CUDA out of memory ({circuit})"
        if kind == "deployment_completed":
            payload.update({"environment": "dev", "pipeline": f"deploy-{k}", "run_id": step})
        session_id = None if kind == "deployment_completed" else sessions[k]
        await store.apply(
            Observation(
                # Apart in time, so no two failures fall into one group.
                now=SIM_EPOCH + timedelta(milliseconds=i),
                events=[
                    NewEvent(
                        key=f"burst/{i:03d}/{kind}",
                        kind=kind,
                        payload=payload,
                        session_id=session_id,
                        circuit=circuit,
                    )
                ],
            )
        )


def expected_keys_per_conversation() -> int:
    # One session card, a reply per failure and per reminder, a card per deployment.
    failures = sum(1 for c in range(CIRCUITS) if c % 2)
    return 1 + failures + CIRCUITS + CIRCUITS


async def check_outcome(db: Database, connector: ConnectorStandIn, kills: int) -> None:
    events = MonitoringStore(db)
    assert await events.events(undelivered_only=True, limit=1) == []
    deliveries = DeliveryStore(db)
    for event in await events.events(limit=EVENTS):
        records = await deliveries.for_event(event.id)
        assert [r.status for r in records.values()] == ["sent"], event.key
    posted = {p.key: p for p in await PostedActivityStore(db).all()}
    uncertain = {key for key, p in posted.items() if p.uncertain_posts}
    repeated: set[str] = set()
    for k in range(CONVERSATIONS):
        messages = connector.conversation_messages(conversation_id(k))
        keys = [m.client_key for m in messages]
        assert None not in keys
        counts = Counter(keys)
        assert len(counts) == expected_keys_per_conversation(), conversation_id(k)
        repeated |= {key for key, n in counts.items() if n > 1 and key is not None}
        # Created in event order (the first copy of each key counts).
        order = [posted[key].event_id or 0 for key in dict.fromkeys(keys) if key is not None]
        assert order == sorted(order), conversation_id(k)
        # The living card (the copy whose id the store kept, should a crash have posted
        # it twice) shows every circuit in its final state.
        session_key = next(key for key in counts if key and key.startswith("session_card:"))
        card = connector.messages[str(posted[session_key].activity_id)]
        shown = str(card.body)
        assert all(f"PLANT{k:03d}/CIRCUIT{c:02d}" in shown for c in range(CIRCUITS))
        assert "❌ Failed" in shown and "✅ Completed" in shown
        # Replies sit in the card's thread in channels; chats have no threads.
        replies = [m for m in messages if (m.client_key or "").startswith("reply:")]
        expected_root = card.activity_id if k % 2 == 0 else None
        assert {m.thread_root for m in replies} == {expected_root}
    assert repeated <= uncertain
    assert len(repeated) <= kills
    assert connector.violations == []


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
