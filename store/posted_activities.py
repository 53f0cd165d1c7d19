"""Which Teams message holds what: living cards, thread replies and plain notifications.

The Bot Connector assigns activity ids and has no idempotent create, so mlbot chooses a
key for every message it means to create and writes it down *before* posting:

1. `begin(key)` stores the intent ("posting");
2. the POST goes out;
3. `posted(key, activity_id)` stores the id Teams assigned.

A retry finds the row. With an id, the message exists: a living card is updated in place
(PUT, idempotent) and a reply or notification is not sent again. Without an id, the
process died between 1 and 3 and nobody knows whether Teams received the POST; the retry
posts again and counts the row's `uncertain_posts`, so a possible duplicate is visible
in the store instead of silent.

Each step is committed before its caller goes on. Writes of sends under way to other
conversations share the commit (`store.group_commit`); `begin` is one statement on the
first attempt and also reports a row already posted, so a send needs no read first.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from store.database import Database
from store.group_commit import GroupCommit, insert_new
from store.tables import posted_activities

POSTING = "posting"
POSTED = "posted"

SESSION_CARD = "session_card"
RUN_CARD = "run_card"  # one per Azure DevOps pipeline run
REPLY = "reply"
MESSAGE = "message"


def message_key(kind: str, *parts: object) -> str:
    """A short, stable key for a message (its parts may be long: conversation ids are)."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()[:48]
    return f"{kind}:{digest}"


@dataclass(frozen=True, slots=True)
class PostedActivity:
    key: str
    destination: str
    kind: str
    session_id: int | None
    event_id: int | None
    status: str  # posting | posted
    activity_id: str | None
    uncertain_posts: int


class PostedActivityStore:
    def __init__(self, db: Database, writes: GroupCommit | None = None) -> None:
        self._db = db
        # Shared with the delivery store where one worker writes both: one commit
        # carries the keys and rows of every send under way.
        self._writes = writes or GroupCommit(db)

    async def get(self, key: str) -> PostedActivity | None:
        async with self._db.engine.connect() as conn:
            row = (
                await conn.execute(select(posted_activities).where(posted_activities.c.key == key))
            ).first()
        return _record(row._mapping) if row else None

    async def begin(
        self,
        key: str,
        *,
        destination: str,
        kind: str,
        now: datetime,
        session_id: int | None = None,
        event_id: int | None = None,
    ) -> PostedActivity:
        """Record the intent to post `key`; returns the row as it now stands.

        Committed before the POST. A row that says "posted" is returned unchanged: the
        message exists and must not be posted again. A row that says "posting" means an
        earlier attempt died without learning the outcome: this attempt is counted as
        uncertain.
        """

        async def write(conn: AsyncConnection) -> PostedActivity:
            values = {
                "key": key,
                "destination": destination,
                "kind": kind,
                "session_id": session_id,
                "event_id": event_id,
                "status": POSTING,
                "activity_id": None,
                "uncertain_posts": 0,
                "created_at": now,
                "updated_at": now,
            }
            # The first attempt, by far the most common, is one statement.
            if await insert_new(conn, posted_activities, values, ["key"]):
                return _record(values)
            row = (
                await conn.execute(select(posted_activities).where(posted_activities.c.key == key))
            ).first()
            if row is None:  # no conflict-free insert on this database: insert it plainly
                await conn.execute(posted_activities.insert().values(**values))
                return _record(values)
            record = _record(row._mapping)
            if record.status != POSTING:
                return record
            await conn.execute(
                posted_activities.update()
                .where(and_(posted_activities.c.key == key, posted_activities.c.status == POSTING))
                .values(uncertain_posts=posted_activities.c.uncertain_posts + 1, updated_at=now)
            )
            return replace(record, uncertain_posts=record.uncertain_posts + 1)

        return await self._writes.run(write)

    async def posted(self, key: str, activity_id: str | None, now: datetime) -> None:
        async def write(conn: AsyncConnection) -> None:
            await conn.execute(
                posted_activities.update()
                .where(posted_activities.c.key == key)
                .values(status=POSTED, activity_id=activity_id, updated_at=now)
            )

        await self._writes.run(write)

    async def forget(self, key: str) -> None:
        """The message is gone (Teams no longer knows the activity): post a new one."""

        async def write(conn: AsyncConnection) -> None:
            await conn.execute(posted_activities.delete().where(posted_activities.c.key == key))

        await self._writes.run(write)

    async def uncertain(self) -> list[PostedActivity]:
        """Messages that may have reached Teams twice (a crash hid the first outcome)."""
        async with self._db.sessions() as session:
            rows = (
                await session.execute(
                    select(posted_activities)
                    .where(posted_activities.c.uncertain_posts > 0)
                    .order_by(posted_activities.c.created_at)
                )
            ).all()
        return [_record(row._mapping) for row in rows]

    async def all(self) -> list[PostedActivity]:
        async with self._db.sessions() as session:
            rows = (
                await session.execute(
                    select(posted_activities).order_by(posted_activities.c.created_at)
                )
            ).all()
        return [_record(row._mapping) for row in rows]


def _record(row: Any) -> PostedActivity:
    return PostedActivity(
        key=row["key"],
        destination=row["destination"],
        kind=row["kind"],
        session_id=row["session_id"],
        event_id=row["event_id"],
        status=row["status"],
        activity_id=row["activity_id"],
        uncertain_posts=row["uncertain_posts"] or 0,
    )
