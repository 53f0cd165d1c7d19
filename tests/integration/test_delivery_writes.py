"""The delivery worker's writes: shared commits, send-once keys, delivery rows."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.destinations import WEBHOOK, TeamsConversation
from store.database import Database
from store.deliveries import DeliveryStore
from store.group_commit import GroupCommit
from store.monitoring import MonitoringStore, NewEvent, Observation
from store.posted_activities import POSTED, POSTING, PostedActivityStore

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def count_commits(db: Database) -> list[int]:
    commits: list[int] = []

    def on_commit(_conn: Any) -> None:
        commits.append(1)

    event.listen(db.engine.sync_engine, "commit", on_commit)
    return commits


async def test_concurrent_writes_share_commits_and_all_land(database: Database) -> None:
    writes = GroupCommit(database)
    posted = PostedActivityStore(database, writes)
    commits = count_commits(database)
    rows = await asyncio.gather(
        *(
            posted.begin(f"message:{n}", destination="teams:a", kind="message", now=NOW)
            for n in range(20)
        )
    )
    assert [row.status for row in rows] == [POSTING] * 20
    assert {row.key for row in await posted.all()} == {f"message:{n}" for n in range(20)}
    assert 1 <= len(commits) < 20


async def test_a_failing_write_fails_alone(database: Database) -> None:
    writes = GroupCommit(database)
    posted = PostedActivityStore(database, writes)

    async def broken(conn: AsyncConnection) -> None:
        await conn.execute(text("SELECT no_such_column FROM posted_activities"))

    outcomes = await asyncio.gather(
        posted.begin("message:before", destination="teams:a", kind="message", now=NOW),
        writes.run(broken),
        posted.begin("message:after", destination="teams:a", kind="message", now=NOW),
        return_exceptions=True,
    )
    assert isinstance(outcomes[1], Exception)
    assert {row.key for row in await posted.all()} == {"message:before", "message:after"}


async def test_a_key_is_posted_once_and_a_blind_retry_is_counted(database: Database) -> None:
    posted = PostedActivityStore(database)
    first = await posted.begin("reply:x", destination="teams:a", kind="reply", now=NOW)
    assert (first.status, first.uncertain_posts) == (POSTING, 0)
    # The process died after the POST went out and before its id was stored.
    again = await posted.begin("reply:x", destination="teams:a", kind="reply", now=NOW)
    assert (again.status, again.uncertain_posts) == (POSTING, 1)
    await posted.posted("reply:x", "activity-7", NOW)
    done = await posted.begin("reply:x", destination="teams:a", kind="reply", now=NOW)
    assert (done.status, done.activity_id, done.uncertain_posts) == (POSTED, "activity-7", 1)
    assert [p.key for p in await posted.uncertain()] == ["reply:x"]


async def test_delivery_rows_count_attempts_and_events_complete_together(
    database: Database,
) -> None:
    monitoring = MonitoringStore(database)
    await monitoring.apply(
        Observation(
            now=NOW,
            events=[
                NewEvent(key=f"e{n}", kind="deployment_completed", payload={}) for n in range(3)
            ],
        )
    )
    ids = [e.id for e in await monitoring.events(limit=3)]
    deliveries = DeliveryStore(database)
    a = TeamsConversation("a")
    retry_at = NOW + timedelta(seconds=30)
    await deliveries.record(
        ids[0], a, status="pending", now=NOW, error="503", next_attempt_at=retry_at
    )
    await deliveries.record_sent(ids[:2], a, now=NOW, activity_id="activity-1")
    rows = await deliveries.for_events(ids)
    assert rows[ids[0]][a].attempts == 2 and rows[ids[1]][a].attempts == 1
    assert {r[a].status for r in rows.values()} == {"sent"}
    assert rows[ids[0]][a].next_attempt_at is None
    assert ids[2] not in rows
    await deliveries.complete_events(ids[:2], NOW)
    assert [e.id for e in await monitoring.events(undelivered_only=True)] == [ids[2]]


@pytest.mark.parametrize("writers", [1, 8])
async def test_every_caller_resumes_after_its_own_commit(database: Database, writers: int) -> None:
    """A write is visible from another connection as soon as its caller resumes."""
    writes = GroupCommit(database)
    posted = PostedActivityStore(database, writes)
    seen: list[bool] = []

    async def write_then_look(n: int) -> None:
        key = f"card:{n}"
        await posted.begin(key, destination="teams:a", kind="message", now=NOW)
        seen.append(await PostedActivityStore(database).get(key) is not None)

    await asyncio.gather(*(write_then_look(n) for n in range(writers)))
    assert seen == [True] * writers


async def test_claims_keep_two_owners_apart_and_expire(database: Database) -> None:
    monitoring = MonitoringStore(database)
    await monitoring.apply(
        Observation(
            now=NOW,
            events=[
                NewEvent(key=f"c{n}", kind="deployment_completed", payload={}) for n in range(4)
            ],
        )
    )
    ids = [e.id for e in await monitoring.events(limit=4)]
    a, hook = TeamsConversation("a"), WEBHOOK
    first, second = DeliveryStore(database), DeliveryStore(database)
    until = NOW + timedelta(seconds=60)
    wanted = [(i, a) for i in ids[:3]] + [(ids[0], hook)]
    got = await first.claim(wanted, owner="one", now=NOW, until=until)
    assert got == set(wanted)
    # A live claim is nobody else's; the rest is free to take.
    later = NOW + timedelta(seconds=5)
    taken = await second.claim([(i, a) for i in ids], owner="two", now=later, until=until)
    assert taken == {(ids[3], a)}
    # An outcome counts only under the claim that is held, and ends it.
    assert not await second.record_sent([ids[0]], a, now=later, activity_id="x", claim="two")
    assert await first.record_sent([ids[0]], a, now=later, activity_id="y", claim="one")
    rows = await first.for_events(ids)
    assert (rows[ids[0]][a].status, rows[ids[0]][a].claimed_by) == ("sent", None)
    assert rows[ids[0]][a].activity_id == "y" and rows[ids[0]][a].attempts == 1
    # A sent row is never claimed again; an expired claim is taken over.
    expired = until + timedelta(seconds=1)
    again = await second.claim(
        wanted, owner="two", now=expired, until=expired + timedelta(seconds=60)
    )
    assert again == {(ids[1], a), (ids[2], a), (ids[0], hook)}
    assert not await first.record(
        ids[1], a, status="pending", now=expired, error="503", claim="one"
    )
    # Renewal extends only the owner's live claims (its first one, on the last event,
    # has expired); release gives every claim back.
    assert await second.renew("two", now=expired, until=expired + timedelta(seconds=120)) == 3
    await second.release("two")
    free = await first.for_events(ids)
    assert all(r.claimed_by is None for by in free.values() for r in by.values())
    assert free[ids[1]][a].status == "pending" and free[ids[1]][a].attempts == 0
