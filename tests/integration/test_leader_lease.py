"""The leader lease in PostgreSQL: one holder at a time, takeover after expiry, fencing."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from domain.leadership import FenceToken
from store.database import Database
from store.leader_lease import LeaseLostError, LeaseStore, fence_check
from store.monitoring import MonitoringStore
from tests.conftest import POSTGRES_URL

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(not POSTGRES_URL, reason="MLBOT_TEST_POSTGRES_URL not set"),
]

NOW = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


@pytest.fixture
async def db() -> AsyncIterator[Database]:
    schema = f"mlbot_lease_{uuid.uuid4().hex[:12]}"
    admin = Database(POSTGRES_URL)
    async with admin.engine.begin() as conn:
        await conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    database = Database(POSTGRES_URL, connect_args={"server_settings": {"search_path": schema}})
    try:
        await database.migrate()
        yield database
    finally:
        await database.dispose()
        async with admin.engine.begin() as conn:
            await conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        await admin.dispose()


async def test_one_holder_at_a_time_and_takeover_after_expiry(db: Database) -> None:
    leases = LeaseStore(db)
    first = await leases.claim("a", None, 0.6)
    assert (first.owner, first.held) == ("a", True)
    refused = await leases.claim("b", None, 0.6)
    assert (refused.owner, refused.epoch, refused.held, refused.valid) == (
        "a",
        first.epoch,
        False,
        True,
    )
    renewed = await leases.claim("a", first.epoch, 0.6)
    assert renewed.held and renewed.epoch == first.epoch
    await asyncio.sleep(0.8)  # the database's clock lets it expire
    taken = await leases.claim("b", None, 0.6)
    assert (taken.owner, taken.held, taken.epoch) == ("b", True, first.epoch + 1)
    # The old holder's renewal at its old epoch is refused: it learns who leads.
    late = await leases.claim("a", first.epoch, 0.6)
    assert (late.owner, late.held) == ("b", False)


async def test_release_lets_a_successor_take_over_at_once(db: Database) -> None:
    leases = LeaseStore(db)
    first = await leases.claim("a", None, 60)
    await leases.release("a", first.epoch)
    taken = await leases.claim("b", None, 60)
    assert taken.held and taken.owner == "b"


async def test_a_stale_leaders_writes_are_refused_in_their_own_transaction(db: Database) -> None:
    leases = LeaseStore(db)
    held = await leases.claim("a", None, 0.6)
    token: list[FenceToken | None] = [FenceToken("a", held.epoch)]
    fenced = MonitoringStore(db.guarded(fence_check(lambda: token[0])))
    session = await fenced.open_session(kind="manual", key="k1", title="t", now=NOW)
    assert session.id > 0
    await asyncio.sleep(0.8)
    await leases.claim("b", None, 60)  # the lease moved on; "a" still believes it holds it
    with pytest.raises(LeaseLostError):
        await fenced.open_session(kind="manual", key="k2", title="t", now=NOW)
    async with db.engine.connect() as conn:
        keys = (await conn.execute(text("SELECT key FROM monitoring_sessions"))).scalars().all()
    assert keys == ["k1"]
    # A replica that knows it lost the lease does not even ask.
    token[0] = None
    with pytest.raises(LeaseLostError, match="does not hold"):
        await fenced.open_session(kind="manual", key="k3", title="t", now=NOW)


async def test_a_takeover_waits_for_the_old_leaders_transaction_in_flight(db: Database) -> None:
    leases = LeaseStore(db, lock_timeout_s=5.0)
    held = await leases.claim("a", None, 0.3)
    fenced = db.guarded(fence_check(lambda: FenceToken("a", held.epoch)))
    async with fenced.sessions.begin() as session:
        await session.execute(text("SELECT 1"))  # admitted: holds the lease row
        await asyncio.sleep(0.5)  # past expiry while the transaction is open
        takeover = asyncio.create_task(leases.claim("b", None, 60))
        await asyncio.sleep(0.3)
        assert not takeover.done()  # the new leader waits for this one to end
    taken = await asyncio.wait_for(takeover, 5)
    assert taken.held and taken.owner == "b"
