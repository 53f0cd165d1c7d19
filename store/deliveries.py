"""Who has received which event: one row per (event, destination), and who is sending it.

Recording each destination separately means a retry after a partial failure resends
only to the destinations that did not get the event. Writes go through a group commit:
the delivery worker sends to many conversations at once, and their rows share commits.

A delivery pass claims the rows it is about to send (`claim`: owner and expiry, taken
in one transaction; on PostgreSQL rows another transaction holds are skipped, `FOR
UPDATE SKIP LOCKED`, on SQLite the database's single writer serialises claims). A row
claimed by a live pass is left alone by every other; a claim that expired (its owner
died or hung) may be taken over. The outcome of a claimed send is written only while
the claim is still held, and clears it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.destinations import Destination, parse_destination
from store.database import Database, as_utc
from store.group_commit import GroupCommit, insert_new_rows, upsert
from store.tables import deliveries, events

log = logging.getLogger(__name__)

Pair = tuple[int, Destination]  # (event id, destination)


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    event_id: int
    destination: Destination
    status: str  # pending | sent | failed
    attempts: int
    activity_id: str | None
    last_error: str | None
    next_attempt_at: datetime | None
    claimed_by: str | None = None
    claim_expires_at: datetime | None = None

    def claimed_by_other(self, owner: str, now: datetime) -> bool:
        """A live claim of another pass: leave this row alone until it expires."""
        return (
            self.claimed_by is not None
            and self.claimed_by != owner
            and self.claim_expires_at is not None
            and self.claim_expires_at > now
        )


class DeliveryStore:
    def __init__(self, db: Database, writes: GroupCommit | None = None) -> None:
        self._db = db
        self._writes = writes or GroupCommit(db)

    async def for_event(self, event_id: int) -> dict[Destination, DeliveryRecord]:
        return (await self.for_events([event_id])).get(event_id, {})

    async def for_events(
        self, event_ids: Sequence[int]
    ) -> dict[int, dict[Destination, DeliveryRecord]]:
        """The rows of several events at once: {event id: {destination: record}}."""
        found: dict[int, dict[Destination, DeliveryRecord]] = {}
        ids = list(dict.fromkeys(event_ids))
        async with self._db.engine.connect() as conn:
            for part in _slices(ids):
                rows = (
                    await conn.execute(select(deliveries).where(deliveries.c.event_id.in_(part)))
                ).all()
                for row in rows:
                    try:
                        destination = parse_destination(row.destination)
                    except ValueError:
                        log.warning("delivery row %s names no destination; ignored", row.id)
                        continue
                    found.setdefault(row.event_id, {})[destination] = DeliveryRecord(
                        event_id=row.event_id,
                        destination=destination,
                        status=row.status,
                        attempts=row.attempts,
                        activity_id=row.activity_id,
                        last_error=row.last_error,
                        next_attempt_at=as_utc(row.next_attempt_at),
                        claimed_by=row.claimed_by,
                        claim_expires_at=as_utc(row.claim_expires_at),
                    )
        return found

    async def claim(
        self, wanted: Sequence[Pair], *, owner: str, now: datetime, until: datetime
    ) -> set[Pair]:
        """Claim the rows of `wanted` that nobody else is sending, for `owner` until
        `until`; returns the pairs claimed. A row is claimable while it is pending, due
        (no retry waiting) and unclaimed, claimed by `owner`, or its claim expired."""
        if not wanted:
            return set()
        # One order for every pass: concurrent inserts of the same new rows then wait
        # for each other instead of deadlocking.
        ordered = sorted(dict.fromkeys(wanted), key=lambda pair: (pair[0], pair[1].key))
        by_key = {(event_id, d.key): (event_id, d) for event_id, d in ordered}

        async def write(conn: AsyncConnection) -> set[Pair]:
            await insert_new_rows(
                conn,
                deliveries,
                [
                    {
                        "event_id": event_id,
                        "destination": destination.key,
                        "status": "pending",
                        "attempts": 0,
                        "updated_at": now,
                    }
                    for event_id, destination in ordered
                ],
                ["event_id", "destination"],
            )
            claimed: set[Pair] = set()
            keys = list(by_key)
            for start in range(0, len(keys), 250):
                part = keys[start : start + 250]
                rows = (
                    await conn.execute(
                        select(deliveries.c.id, deliveries.c.event_id, deliveries.c.destination)
                        .where(
                            tuple_(deliveries.c.event_id, deliveries.c.destination).in_(part),
                            deliveries.c.status == "pending",
                            or_(
                                deliveries.c.next_attempt_at.is_(None),
                                deliveries.c.next_attempt_at <= now,
                            ),
                            or_(
                                deliveries.c.claimed_by.is_(None),
                                deliveries.c.claimed_by == owner,
                                deliveries.c.claim_expires_at <= now,
                            ),
                        )
                        .order_by(deliveries.c.id)
                        # Rows another pass is claiming or writing right now are
                        # skipped rather than waited for (PostgreSQL; SQLite has one
                        # writer at a time and ignores the clause).
                        .with_for_update(skip_locked=True)
                    )
                ).all()
                if not rows:
                    continue
                await conn.execute(
                    deliveries.update()
                    .where(deliveries.c.id.in_([row.id for row in rows]))
                    .values(claimed_by=owner, claim_expires_at=until)
                )
                claimed.update(by_key[(row.event_id, row.destination)] for row in rows)
            return claimed

        return await self._writes.run(write)

    async def renew(self, owner: str, *, now: datetime, until: datetime) -> int:
        """Extend `owner`'s claims that have not expired; returns how many."""

        async def write(conn: AsyncConnection) -> int:
            result = await conn.execute(
                deliveries.update()
                .where(deliveries.c.claimed_by == owner, deliveries.c.claim_expires_at > now)
                .values(claim_expires_at=until)
            )
            return int(result.rowcount or 0)

        return await self._writes.run(write)

    async def release_all(self) -> None:
        """Give back every claim: only for a store that no other process can be using."""

        async def write(conn: AsyncConnection) -> None:
            await conn.execute(
                deliveries.update()
                .where(deliveries.c.claimed_by.is_not(None))
                .values(claimed_by=None, claim_expires_at=None)
            )

        await self._writes.run(write)

    async def release(self, owner: str) -> None:
        """Give back `owner`'s claims on rows it did not send (set aside, held back)."""

        async def write(conn: AsyncConnection) -> None:
            await conn.execute(
                deliveries.update()
                .where(deliveries.c.claimed_by == owner)
                .values(claimed_by=None, claim_expires_at=None)
            )

        await self._writes.run(write)

    async def record(
        self,
        event_id: int,
        destination: Destination,
        *,
        status: str,
        now: datetime,
        activity_id: str | None = None,
        error: str | None = None,
        next_attempt_at: datetime | None = None,
        claim: str | None = None,
    ) -> bool:
        """Count an attempt and its outcome. With `claim`, only while that owner still
        holds the row's claim (which it then gives up); False: the claim was lost."""
        return await self._record(
            [event_id],
            destination,
            status=status,
            now=now,
            activity_id=activity_id,
            error=error,
            next_attempt_at=next_attempt_at,
            claim=claim,
        )

    async def record_sent(
        self,
        event_ids: list[int],
        destination: Destination,
        *,
        now: datetime,
        activity_id: str | None,
        claim: str | None = None,
    ) -> bool:
        """Several events reached `destination` in one message: recorded together, so a
        crash leaves either all of them to send again or none."""
        return await self._record(
            event_ids, destination, status="sent", now=now, activity_id=activity_id, claim=claim
        )

    async def _record(
        self,
        event_ids: list[int],
        destination: Destination,
        *,
        status: str,
        now: datetime,
        activity_id: str | None = None,
        error: str | None = None,
        next_attempt_at: datetime | None = None,
        claim: str | None = None,
    ) -> bool:
        values = {
            "status": status,
            "activity_id": activity_id,
            "last_error": (error or "")[:2000] or None,
            "next_attempt_at": next_attempt_at,
            "updated_at": now,
        }

        async def write(conn: AsyncConnection) -> bool:
            if claim is None:
                await _upsert(conn, event_ids, destination.key, values)
                return True
            updated = await conn.execute(
                deliveries.update()
                .where(
                    deliveries.c.event_id.in_(event_ids),
                    deliveries.c.destination == destination.key,
                    deliveries.c.claimed_by == claim,
                )
                .values(
                    attempts=deliveries.c.attempts + 1,
                    claimed_by=None,
                    claim_expires_at=None,
                    **values,
                )
            )
            return int(updated.rowcount or 0) == len(set(event_ids))

        return await self._writes.run(write)

    async def complete_events(self, event_ids: Sequence[int], now: datetime) -> None:
        """Every destination of these events has received them or failed for good."""
        ids = sorted(set(event_ids))  # one lock order for concurrent passes
        if not ids:
            return

        async def write(conn: AsyncConnection) -> None:
            for part in _slices(ids):
                await conn.execute(
                    events.update()
                    .where(events.c.id.in_(part), events.c.delivered_at.is_(None))
                    .values(delivered_at=now, delivery_attempts=events.c.delivery_attempts + 1)
                )

        await self._writes.run(write)

    async def stuck(self, limit: int = 20) -> list[tuple[str, str, str]]:
        """(event kind, destination, error) of deliveries that failed for good."""
        query = (
            select(events.c.kind, deliveries.c.destination, deliveries.c.last_error)
            .join(events, events.c.id == deliveries.c.event_id)
            .where(deliveries.c.status == "failed")
            .order_by(deliveries.c.id.desc())
            .limit(limit)
        )
        # A plain connection, not an ORM session: `status` asks on every call.
        async with self._db.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [(row[0], row[1], row[2] or "") for row in rows]


def _slices(ids: list[int], size: int = 500) -> list[list[int]]:
    """`ids` in parts small enough for one statement (a database limits its parameters)."""
    return [ids[start : start + size] for start in range(0, len(ids), size)]


async def _upsert(
    conn: AsyncConnection, event_ids: list[int], destination: str, values: dict[str, Any]
) -> None:
    """Count one more attempt on each (event, destination) row, creating it on the first."""
    rows = [
        {"event_id": event_id, "destination": destination, "attempts": 1, **values}
        for event_id in event_ids
    ]
    update = {"attempts": deliveries.c.attempts + 1, **values}
    if await upsert(conn, deliveries, rows, ["event_id", "destination"], update):
        return
    for event_id in event_ids:
        # A row another worker creates in between makes the insert fail, and the group
        # commit runs this write again alone: the update then finds the row.
        updated = await conn.execute(
            deliveries.update()
            .where(and_(deliveries.c.event_id == event_id, deliveries.c.destination == destination))
            .values(**update)
        )
        if not updated.rowcount:
            await conn.execute(
                deliveries.insert().values(
                    event_id=event_id, destination=destination, attempts=1, **values
                )
            )
