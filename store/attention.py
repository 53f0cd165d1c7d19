"""Silences, acknowledgements, snoozes, and the events they held back."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from domain.attention import Acknowledgement, Hold, Silence, SilenceRequest, Snooze
from domain.monitoring import EventRecord
from domain.subscriptions import SubscriptionFilters
from store.database import Database, as_utc
from store.group_commit import insert_new
from store.monitoring import event_from_row
from store.tables import events, held_events, job_attention, silences, watched_jobs

MAX_LISTED = 50


def _utc(value: datetime | None) -> datetime:
    converted = as_utc(value)
    assert converted is not None
    return converted


def _silence(row: Any) -> Silence:
    kinds = row["kinds"] if isinstance(row["kinds"], list) else []
    return Silence(
        id=int(row["id"]),
        kinds=tuple(k for k in kinds if isinstance(k, str)),
        filters=SubscriptionFilters.from_json(row["filters"]),
        starts_at=_utc(row["starts_at"]),
        ends_at=_utc(row["ends_at"]),
        created_by=row["created_by"],
        reason=row["reason"],
        ended_early_at=as_utc(row["ended_early_at"]),
        held=int(row["held"] or 0),
    )


class AttentionStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    # --- silences ---------------------------------------------------------------------

    async def add_silence(self, request: SilenceRequest, by: str, now: datetime) -> Silence:
        async with self._db.sessions.begin() as session:
            result = await session.execute(
                silences.insert().values(
                    kinds=list(request.kinds),
                    filters=request.filters.to_json(),
                    starts_at=now,
                    ends_at=now + request.duration,
                    ended_early_at=None,
                    created_by=by,
                    reason=request.reason,
                    held=0,
                )
            )
            new_id = int(result.inserted_primary_key[0])  # type: ignore[attr-defined]
        found = await self.silence(new_id)
        assert found is not None
        return found

    async def silence(self, silence_id: int) -> Silence | None:
        async with self._db.sessions() as session:
            row = (
                await session.execute(select(silences).where(silences.c.id == silence_id))
            ).first()
        return _silence(row._mapping) if row is not None else None

    async def active_silences(self, now: datetime) -> list[Silence]:
        c = silences.c
        query = (
            select(silences)
            .where(c.ends_at > now, c.starts_at <= now, c.ended_early_at.is_(None))
            .order_by(c.ends_at, c.id)
            .limit(MAX_LISTED)
        )
        async with self._db.sessions() as session:
            rows = (await session.execute(query)).all()
        return [_silence(row._mapping) for row in rows]

    async def end_silence(self, silence_id: int, now: datetime) -> Silence | None:
        """End an active silence now; None when there is no such active silence."""
        c = silences.c
        async with self._db.sessions.begin() as session:
            result = await session.execute(
                update(silences)
                .where(c.id == silence_id, c.ended_early_at.is_(None), c.ends_at > now)
                .values(ended_early_at=now)
            )
        if not result.rowcount:  # type: ignore[attr-defined]
            return None
        return await self.silence(silence_id)

    # --- holds ------------------------------------------------------------------------

    async def record_hold(self, event_id: int, hold: Hold, now: datetime) -> bool:
        """Note that `event_id` was held; False if it already was (a repeated pass)."""
        try:
            async with self._db.sessions.begin() as session:
                await session.execute(
                    held_events.insert().values(
                        event_id=event_id,
                        reason=hold.reason[:256],
                        silence_id=hold.silence_id,
                        held_at=now,
                    )
                )
                if hold.silence_id is not None:
                    await session.execute(
                        update(silences)
                        .where(silences.c.id == hold.silence_id)
                        .values(held=silences.c.held + 1)
                    )
        except IntegrityError:
            return False
        return True

    async def hold_summary(self, now: datetime, since: datetime) -> tuple[int, int]:
        """Active silences, and events held since `since`: one round trip for `status`."""
        c = silences.c
        active = (
            select(func.count())
            .select_from(silences)
            .where(c.ends_at > now, c.starts_at <= now, c.ended_early_at.is_(None))
            .scalar_subquery()
        )
        held = (
            select(func.count())
            .select_from(held_events)
            .where(held_events.c.held_at >= since)
            .scalar_subquery()
        )
        async with self._db.sessions() as session:
            row = (await session.execute(select(active, held))).one()
        return int(row[0] or 0), int(row[1] or 0)

    # --- acknowledgements and snoozes ---------------------------------------------------

    async def _row(self, job_key: str) -> Any:
        async with self._db.sessions() as session:
            row = (
                await session.execute(
                    select(job_attention).where(job_attention.c.job_key == job_key)
                )
            ).first()
        return row._mapping if row is not None else None

    async def attention(self, job_key: str) -> tuple[Acknowledgement | None, Snooze | None]:
        row = await self._row(job_key)
        if row is None:
            return None, None
        ack = (
            Acknowledgement(job_key, row["acknowledged_by"], _utc(row["acknowledged_at"]))
            if row["acknowledged_by"]
            else None
        )
        snooze = (
            Snooze(
                job_key, row["snoozed_by"], _utc(row["snoozed_at"]), as_utc(row["snoozed_until"])
            )
            if row["snoozed_by"]
            else None
        )
        return ack, snooze

    async def acknowledged(self, job_keys: Collection[str]) -> set[str]:
        """Those of `job_keys` someone acknowledged: one query however many."""
        if not job_keys:
            return set()
        c = job_attention.c
        query = select(c.job_key).where(
            c.job_key.in_(sorted(set(job_keys))), c.acknowledged_by.is_not(None)
        )
        async with self._db.sessions() as session:
            return {str(key) for key in (await session.scalars(query)).all()}

    async def _ensure(self, job_key: str, now: datetime) -> None:
        # Inserts nothing when the row exists already, which is all this needs.
        async with self._db.engine.begin() as conn:
            await insert_new(
                conn, job_attention, {"job_key": job_key, "updated_at": now}, ["job_key"]
            )

    async def acknowledge(self, job_key: str, by: str, now: datetime) -> Acknowledgement:
        """The job's acknowledgement: this one, or the earlier one that stands."""
        await self._ensure(job_key, now)
        c = job_attention.c
        async with self._db.sessions.begin() as session:
            await session.execute(
                update(job_attention)
                .where(c.job_key == job_key, c.acknowledged_by.is_(None))
                .values(acknowledged_by=by, acknowledged_at=now, updated_at=now)
            )
        ack, _ = await self.attention(job_key)
        assert ack is not None
        return ack

    async def snooze(self, job_key: str, by: str, until: datetime | None, now: datetime) -> Snooze:
        await self._ensure(job_key, now)
        async with self._db.sessions.begin() as session:
            await session.execute(
                update(job_attention)
                .where(job_attention.c.job_key == job_key)
                .values(snoozed_by=by, snoozed_at=now, snoozed_until=until, updated_at=now)
            )
        _, snooze = await self.attention(job_key)
        assert snooze is not None
        return snooze


class EventLookup:
    """What a button or a hold needs to know about one stored event."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def event(self, event_id: int) -> EventRecord | None:
        async with self._db.sessions() as session:
            row = (await session.execute(select(events).where(events.c.id == event_id))).first()
        return event_from_row(row._mapping) if row is not None else None

    async def experiment_of(self, workspace: str | None, job_name: str | None) -> str | None:
        if not workspace or not job_name:
            return None
        c = watched_jobs.c
        async with self._db.sessions() as session:
            found = await session.scalar(
                select(c.experiment).where(c.workspace == workspace, c.name == job_name)
            )
        return str(found) if found else None

    async def was_held(self, event_id: int) -> bool:
        async with self._db.sessions() as session:
            found = await session.scalar(
                select(held_events.c.event_id).where(held_events.c.event_id == event_id)
            )
        return found is not None
