"""Subscriptions in the store (revision 0005) on SQLite and, when configured, PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection

from bot.notifiers import TeamsNotifier
from domain.destinations import TeamsConversation
from domain.jobs import JobState, TrainingJob
from domain.subscriptions import DEFAULT_KINDS, Subscription, SubscriptionFilters
from store.conversations import ConversationRecord, ConversationStore
from store.database import MIGRATIONS_DIR, Database, head_revision
from store.monitoring import EventRecord
from store.tables import subscriptions
from store.watched_jobs import WatchedJobStore
from tests.conftest import POSTGRES_URL

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def record(conversation_id: str, kind: str | None, at: datetime = NOW) -> ConversationRecord:
    return ConversationRecord(
        conversation_id=conversation_id,
        channel_id="msteams",
        service_url="https://smba.example/amer/",
        tenant_id="tenant-1",
        conversation_type=kind,
        team_id="team-1" if kind == "channel" else None,
        title=None,
        reference={"conversation": {"id": conversation_id}},
        installed_by="user-1",
        installed_at=at,
    )


def job(name: str, experiment: str, session_id: int | None = None) -> TrainingJob:
    return TrainingJob(
        workspace="s/r/w",
        name=name,
        display_name=name,
        experiment=experiment,
        circuit="PLANT001/CIRCUIT01",
        status="Running",
        state=JobState.RUNNING,
    )


async def test_defaults_by_conversation_type(database: Database) -> None:
    store = ConversationStore(database)
    await store.remember(record("channel-1", "channel"))
    await store.remember(record("group-1", "groupChat"))
    await store.remember(record("personal-1", "personal"))
    assert await store.event_kinds("channel-1") == list(DEFAULT_KINDS)
    assert await store.event_kinds("group-1") == list(DEFAULT_KINDS)
    assert await store.event_kinds("personal-1") == []
    # A refresh (Teams re-sends the install) keeps what people chose.
    await store.save_subscription("channel-1", Subscription.of(["rollback"]), by="Ada", now=NOW)
    assert await store.remember(record("channel-1", "channel")) is False
    assert await store.event_kinds("channel-1") == ["rollback"]


async def test_save_and_read_back(database: Database) -> None:
    store = ConversationStore(database)
    await store.remember(record("c1", "channel"))
    wanted = Subscription.of(
        ["training_failed", "deployment_failed"],
        SubscriptionFilters(("circuit-training",), ("PLANT001/", "PLANT002/"), ("prod",)),
    )
    assert await store.save_subscription("c1", wanted, by="Ada (ada@x)", now=NOW) is True
    stored = await store.subscription("c1")
    assert stored is not None
    assert stored.subscription == wanted
    assert stored.updated_by == "Ada (ada@x)" and stored.updated_at == NOW
    # Unknown conversations are not given a subscription.
    assert await store.save_subscription("nowhere", wanted, by="Ada", now=NOW) is False
    assert await store.subscription("nowhere") is None
    # Forgetting the conversation drops its subscription.
    await store.forget("c1")
    assert await store.subscription("c1") is None


async def test_subscribers_in_installation_order_with_the_jobs_experiment(
    database: Database,
) -> None:
    store = ConversationStore(database)
    jobs = WatchedJobStore(database)
    await store.remember(record("later", "channel", NOW.replace(hour=13)))
    await store.remember(record("earlier", "channel"))
    await store.remember(record("personal", "personal", NOW.replace(hour=14)))
    await jobs.upsert(job("job-a", "circuit-training"), now=NOW)
    await jobs.upsert(job("job-b", ""), now=NOW)

    found = await store.subscribers(workspace="s/r/w", job_name="job-a")
    assert [c for c, _ in found.subscriptions] == ["earlier", "later", "personal"]
    assert found.subscriptions[2][1] == Subscription()
    assert found.experiment == "circuit-training"
    assert (await store.subscribers(workspace="s/r/w", job_name="job-b")).experiment is None
    assert (await store.subscribers(workspace="s/r/w", job_name="gone")).experiment is None
    assert (await store.subscribers()).experiment is None
    # The older, filter-free reading still answers by kind.
    assert [c.conversation_id for c in await store.subscribed("training_failed")] == [
        "earlier",
        "later",
    ]


async def test_a_sessions_experiment_when_its_jobs_share_one(database: Database) -> None:
    store = ConversationStore(database)
    await store.remember(record("c1", "channel"))
    async with database.sessions.begin() as session:
        for name, experiment, session_id in (
            ("a1", "exp-a", 1),
            ("a2", "exp-a", 1),
            ("b1", "exp-a", 2),
            ("b2", "exp-b", 2),
        ):
            await session.execute(
                sa.text(
                    "INSERT INTO watched_jobs (workspace, name, display_name, experiment, "
                    "status, state, attempt, updated_at, session_id, announced_start, "
                    "timed_out, reminders_sent, state_rank, superseded) VALUES "
                    "('w', :name, :name, :experiment, 'Running', 'running', 1, :now, "
                    ":session_id, false, false, 0, 0, false)"
                ),
                {"name": name, "experiment": experiment, "session_id": session_id, "now": NOW},
            )
    assert (await store.subscribers(session_id=1)).experiment == "exp-a"
    assert (await store.subscribers(session_id=2)).experiment is None  # two experiments
    assert (await store.subscribers(session_id=3)).experiment is None


# --- the migration --------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgres"])
async def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """A database with no schema at all, to migrate step by step."""
    if request.param == "sqlite":
        db = Database(f"sqlite+aiosqlite:///{tmp_path}/steps.db")
        yield db
        await db.dispose()
        return
    if not POSTGRES_URL:
        pytest.skip("MLBOT_TEST_POSTGRES_URL not set")
    schema = f"mlbot_test_{uuid.uuid4().hex[:12]}"
    admin = Database(POSTGRES_URL)
    async with admin.engine.begin() as conn:
        await conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    db = Database(POSTGRES_URL, connect_args={"server_settings": {"search_path": schema}})
    try:
        yield db
    finally:
        await db.dispose()
        async with admin.engine.begin() as conn:
            await conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        await admin.dispose()


async def _upgrade(db: Database, revision: str) -> None:
    def upgrade(connection: Connection) -> None:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        config.attributes["connection"] = connection
        command.upgrade(config, revision)

    async with db.engine.begin() as conn:
        await conn.run_sync(upgrade)


async def test_migration_0005_merges_rows_and_makes_one_per_conversation(
    empty_database: Database,
) -> None:
    db = empty_database
    await _upgrade(db, "0004")
    old = sa.table(
        "subscriptions",
        sa.column("conversation_id", sa.String),
        sa.column("event_kinds", sa.JSON),
        sa.column("filters", sa.JSON),
        sa.column("created_at", sa.DateTime(timezone=True)),
    )
    conv = sa.table(
        "conversations",
        sa.column("conversation_id", sa.String),
        sa.column("channel_id", sa.String),
        sa.column("service_url", sa.String),
        sa.column("reference", sa.JSON),
        sa.column("installed_at", sa.DateTime(timezone=True)),
    )
    async with db.engine.begin() as conn:
        for conversation_id in ("c1", "c2"):
            await conn.execute(
                conv.insert().values(
                    conversation_id=conversation_id,
                    channel_id="msteams",
                    service_url="https://smba.example/",
                    reference={},
                    installed_at=NOW,
                )
            )
        await conn.execute(
            old.insert(),
            [
                {
                    "conversation_id": "c1",
                    "event_kinds": ["training_failed"],
                    "filters": {"circuit_prefix": "PLANT001/"},
                    "created_at": NOW,
                },
                {
                    "conversation_id": "c1",
                    "event_kinds": ["training_failed", "rollback"],
                    "filters": {},
                    "created_at": NOW,
                },
                {
                    "conversation_id": "c2",
                    "event_kinds": ["approval_required"],
                    "filters": {},
                    "created_at": NOW,
                },
            ],
        )
    await _upgrade(db, "0005")
    store = ConversationStore(db)
    c1 = await store.subscription("c1")
    assert c1 is not None
    assert c1.subscription == Subscription.of(
        ["training_failed", "rollback"], SubscriptionFilters((), ("PLANT001/",))
    )
    assert await store.event_kinds("c2") == ["approval_required"]
    async with db.engine.begin() as conn:
        count = await conn.scalar(sa.select(sa.func.count()).select_from(subscriptions))
        assert count == 2
    # One row per conversation from now on.
    with pytest.raises(sa.exc.IntegrityError):
        async with db.engine.begin() as conn:
            await conn.execute(
                old.insert().values(
                    conversation_id="c2", event_kinds=[], filters={}, created_at=NOW
                )
            )
    # And the rest of the chain applies on top.
    await _upgrade(db, "head")
    assert (await db.readiness()).revision == head_revision()


async def test_routing_an_event_costs_one_query(database: Database) -> None:
    store = ConversationStore(database)
    jobs = WatchedJobStore(database)
    for n in range(30):
        await store.remember(record(f"c{n:02d}", "channel"))
    await store.save_subscription(
        "c07",
        Subscription.of(["training_failed"], SubscriptionFilters(("other-experiment",))),
        by="Ada",
        now=NOW,
    )
    await jobs.upsert(job("job-a", "circuit-training"), now=NOW)
    notifier = TeamsNotifier(store, cast(Any, None))
    event = EventRecord(
        id=1,
        key="k",
        kind="training_failed",
        payload={"circuit": "PLANT001/CIRCUIT01"},
        session_id=None,
        workspace="s/r/w",
        job_name="job-a",
        circuit="PLANT001/CIRCUIT01",
        created_at=NOW,
        delivered_at=None,
        delivery_attempts=0,
        last_error=None,
    )
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(str(args[2]))

    sa.event.listen(database.engine.sync_engine, "before_cursor_execute", count)
    try:
        destinations = await notifier.destinations(event)
    finally:
        sa.event.remove(database.engine.sync_engine, "before_cursor_execute", count)
    assert len(statements) == 1
    assert len(destinations) == 29 and TeamsConversation("c07") not in destinations
