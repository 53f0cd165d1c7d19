"""Card action idempotency on SQLite and, when MLBOT_TEST_POSTGRES_URL is set, PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from store.card_actions import ActionClaim, CardActionStore
from store.database import Database
from store.tables import card_actions

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
NONCE = "q2v7HxYk3T0bq9Jd1uR5aw"


async def test_first_claim_acts_and_repeats_get_its_answer(database: Database) -> None:
    store = CardActionStore(database)
    assert await store.claim(NONCE, "approve", "user-1", NOW) == ActionClaim(
        first=True, status="claimed", outcome=None, result=None
    )
    # A double click while the first is still working: not first, no answer yet.
    assert await store.claim(NONCE, "approve", "user-1", NOW) == ActionClaim(
        first=False, status="claimed", outcome=None, result=None
    )
    result = {"card": {"type": "AdaptiveCard", "body": [{"text": "Approved by Ada ✓"}]}}
    await store.complete(NONCE, "ok", result, NOW + timedelta(seconds=2))
    again = await store.claim(NONCE, "approve", "user-2", NOW + timedelta(minutes=5))
    assert again == ActionClaim(first=False, status="done", outcome="ok", result=result)

    async with database.sessions() as session:
        row = (
            await session.execute(select(card_actions).where(card_actions.c.nonce == NONCE))
        ).one()
    assert (row.verb, row.actor_id, row.status, row.outcome) == ("approve", "user-1", "done", "ok")


async def test_concurrent_claims_have_exactly_one_winner(database: Database) -> None:
    store = CardActionStore(database)
    claims = await asyncio.gather(
        *(store.claim(NONCE, "rollback", f"user-{n}", NOW) for n in range(8))
    )
    assert sum(claim.first for claim in claims) == 1
    assert all(claim.status in ("claimed", "done") for claim in claims)


async def test_concurrent_claims_of_many_nonces(database: Database) -> None:
    store = CardActionStore(database)
    nonces = [f"nonce-{n:02d}-xxxxxxxxxxxx" for n in range(5)]
    claims = await asyncio.gather(
        *(store.claim(nonce, "retry", None, NOW) for nonce in nonces for _ in range(3))
    )
    assert sum(claim.first for claim in claims) == len(nonces)


async def test_different_nonces_are_independent(database: Database) -> None:
    store = CardActionStore(database)
    assert (await store.claim("approve-button-nonce", "approve", "u", NOW)).first
    assert (await store.claim("reject-button-nonce-", "reject", "u", NOW)).first


async def test_get_and_release(database: Database) -> None:
    store = CardActionStore(database)
    assert await store.get(NONCE) is None
    await store.claim(NONCE, "approve", "viewer", NOW)
    # The first caller stopped before acting: the card can be used again.
    assert await store.release(NONCE) is True
    assert await store.get(NONCE) is None
    assert (await store.claim(NONCE, "approve", "approver", NOW)).first
    await store.complete(NONCE, "ok", {"decided": True}, NOW)
    # A finished action is never released.
    assert await store.release(NONCE) is False
    assert await store.get(NONCE) == ActionClaim(False, "done", "ok", {"decided": True})


async def test_completing_an_unclaimed_action_is_a_bug(database: Database) -> None:
    with pytest.raises(LookupError):
        await CardActionStore(database).complete("never-claimed-nonce", "ok", {}, NOW)


@pytest.mark.parametrize("nonce", ["", "x" * 65])
async def test_nonce_must_fit_the_column(database: Database, nonce: str) -> None:
    with pytest.raises(ValueError):
        await CardActionStore(database).claim(nonce, "approve", None, NOW)


async def test_an_action_with_an_unknown_outcome_is_claimed_again_by_one_press(
    database: Database,
) -> None:
    store = CardActionStore(database)
    await store.claim(NONCE, "retry.confirm", "user-1", NOW)
    await store.complete(NONCE, "unknown", {"card": {"checking": True}}, NOW)
    # Not "nothing was changed": the claim stays, so the button is never simply free again.
    assert await store.release(NONCE) is False
    repeat = await store.claim(NONCE, "retry.confirm", "user-1", NOW + timedelta(minutes=1))
    assert (repeat.first, repeat.outcome) == (False, "unknown")
    later = NOW + timedelta(minutes=1)
    reclaims = await asyncio.gather(*(store.reclaim(NONCE, later) for _ in range(4)))
    assert sum(reclaims) == 1
    await store.complete(NONCE, "ok", {"card": {"queued": 7}}, later)
    # A known outcome is never claimed again.
    assert await store.reclaim(NONCE, later) is False
    assert await store.get(NONCE) == ActionClaim(False, "done", "ok", {"card": {"queued": 7}})
