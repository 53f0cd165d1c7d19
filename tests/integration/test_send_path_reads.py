"""What one Teams notification costs the store: the reads and writes on its path.

Each round trip to the store is several hops to the database driver's thread, which
is most of a notification's CPU time; these tests pin the round trips a send makes.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from botbuilder.integration.aiohttp import CloudAdapter
from sqlalchemy import event, text

from bot.auth import build_authentication
from bot.proactive import ProactiveMessenger, UnknownConversationError
from config.settings import settings_from_mapping
from store.conversations import ConversationStore
from store.database import Database
from store.monitoring import MonitoringStore, NewEvent, Observation
from tests.integration.delivery_worker import (
    SIM_EPOCH,
    FastClock,
    build_dispatcher,
    remember_conversation,
)
from tests.standins.connector import ConnectorStandIn

CHANNEL = "19:burst@thread.tacv2"


@pytest.fixture
async def connector() -> AsyncIterator[ConnectorStandIn]:
    standin = ConnectorStandIn()
    await standin.start()
    yield standin
    await standin.stop()


def statements(db: Database) -> list[str]:
    """Every SQL statement the engine runs from now on, in order."""
    seen: list[str] = []

    def before(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(" ".join(statement.split()))

    event.listen(db.engine.sync_engine, "before_cursor_execute", before)
    return seen


async def seed(db: Database, url: str, count: int) -> None:
    await remember_conversation(ConversationStore(db), CHANNEL, "channel", url)
    events = [
        NewEvent(
            key=f"deploy/{i}",
            kind="deployment_completed",
            payload={"conversation": CHANNEL, "environment": "dev", "pipeline": "p", "run_id": i},
        )
        for i in range(count)
    ]
    await MonitoringStore(db).apply(Observation(now=SIM_EPOCH, events=events))


async def test_a_new_card_claims_its_key_without_reading_it_first(
    database: Database, connector: ConnectorStandIn
) -> None:
    await seed(database, connector.url, 1)
    dispatcher = build_dispatcher(database, FastClock(time.time(), 1.0))
    seen = statements(database)
    report = await dispatcher.dispatch_pending()
    assert report.sent == 1 and len(connector.messages) == 1
    on_keys = [s.split()[0] for s in seen if "posted_activities" in s]
    # The claim (an insert that also tells of a message posted earlier), then the id.
    assert on_keys == ["INSERT", "UPDATE"], on_keys


async def test_a_burst_to_one_conversation_reads_its_reference_once(
    database: Database, connector: ConnectorStandIn
) -> None:
    await seed(database, connector.url, 3)
    dispatcher = build_dispatcher(database, FastClock(time.time(), 1.0))
    seen = statements(database)
    report = await dispatcher.dispatch_pending()
    assert report.sent == 3 and len(connector.messages) == 3
    reads = [s for s in seen if s.startswith("SELECT") and "FROM conversations" in s]
    assert len(reads) == 1, reads


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def messenger_for(db: Database, store: ConversationStore, clock: Clock) -> ProactiveMessenger:
    settings = settings_from_mapping({"MLBOT_DATABASE_URL": db.url})
    adapter = CloudAdapter(build_authentication(settings))
    return ProactiveMessenger(adapter, "", store, reference_ttl_s=60.0, monotonic=clock)


async def test_a_conversation_changed_here_is_read_again_at_once(
    database: Database, connector: ConnectorStandIn
) -> None:
    moved = ConnectorStandIn()
    await moved.start()
    try:
        store, clock = ConversationStore(database), Clock()
        messenger = await messenger_for(database, store, clock)
        await remember_conversation(store, CHANNEL, "channel", connector.url)
        await messenger.send_text(CHANNEL, "first")
        # The conversation's service URL moved; the next message goes to the new one.
        await remember_conversation(store, CHANNEL, "channel", moved.url)
        await messenger.send_text(CHANNEL, "second")
        assert [m.body["text"] for m in connector.messages.values()] == ["first"]
        assert [m.body["text"] for m in moved.messages.values()] == ["second"]
        # The bot was removed: nothing is sent from a reference kept before.
        await store.forget(CHANNEL)
        with pytest.raises(UnknownConversationError):
            await messenger.send_text(CHANNEL, "third")
        assert len(moved.messages) == 1
    finally:
        await moved.stop()


async def test_a_change_made_elsewhere_is_seen_once_the_reference_expires(
    database: Database, connector: ConnectorStandIn
) -> None:
    store, clock = ConversationStore(database), Clock()
    messenger = await messenger_for(database, store, clock)
    await remember_conversation(store, CHANNEL, "channel", connector.url)
    await messenger.send_text(CHANNEL, "first")
    # Another process (another store) removes the conversation.
    await ConversationStore(database).forget(CHANNEL)
    clock.now = 59.0
    await messenger.send_text(CHANNEL, "kept a while")
    clock.now = 60.5
    with pytest.raises(UnknownConversationError):
        await messenger.send_text(CHANNEL, "expired")
    assert [m.body["text"] for m in connector.messages.values()] == ["first", "kept a while"]


async def test_a_sqlite_file_store_writes_ahead_to_a_log(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/wal.db")
    try:
        await db.migrate()
        async with db.engine.connect() as conn:
            mode = await conn.scalar(text("PRAGMA journal_mode"))
            synchronous = await conn.scalar(text("PRAGMA synchronous"))
        assert mode == "wal"
        assert synchronous == 2  # FULL: a commit survives a power cut
    finally:
        await db.dispose()
