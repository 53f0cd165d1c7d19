"""Where the bot is installed: conversation references for proactive messages."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, delete, func, literal, select
from sqlalchemy.exc import IntegrityError

from domain.subscriptions import Subscription, default_subscription
from store.database import Database, as_utc
from store.tables import conversations, subscriptions, watched_jobs


@dataclass(frozen=True, slots=True)
class ConversationRecord:
    conversation_id: str
    channel_id: str
    service_url: str
    tenant_id: str | None
    conversation_type: str | None
    team_id: str | None
    title: str | None
    reference: dict[str, Any]
    installed_by: str | None
    installed_at: datetime


@dataclass(frozen=True, slots=True)
class StoredSubscription:
    subscription: Subscription
    updated_at: datetime | None
    updated_by: str | None


@dataclass(frozen=True, slots=True)
class Subscribers:
    """Every conversation's subscription (oldest installation first), and the experiment
    of the event's job or session when the store knows it (None otherwise)."""

    subscriptions: list[tuple[str, Subscription]]
    experiment: str | None


class ConversationStore:
    def __init__(self, db: Database) -> None:
        self._db = db
        # Counts this store's changes to conversations (after each commit), so a reader
        # that keeps references (`ProactiveMessenger`) drops them when one changed here.
        self.revision = 0

    async def remember(
        self, record: ConversationRecord, initial: Subscription | None = None
    ) -> bool:
        """Store or refresh a conversation; True when it was new (then it gets `initial`,
        by default `default_subscription` of its type: nothing for a personal chat).

        Teams sends `conversationUpdate` and `installationUpdate` for one install at the
        same moment; whichever inserts second sees the conflict and refreshes instead.
        """
        try:
            return await self._remember(record, initial)
        finally:
            self.revision += 1

    async def _remember(self, record: ConversationRecord, initial: Subscription | None) -> bool:
        subscription = (
            initial if initial is not None else default_subscription(record.conversation_type)
        )
        values = {
            "channel_id": record.channel_id,
            "service_url": record.service_url,
            "tenant_id": record.tenant_id,
            "conversation_type": record.conversation_type,
            "team_id": record.team_id,
            "title": record.title,
            "reference": record.reference,
        }
        try:
            async with self._db.sessions.begin() as session:
                await session.execute(
                    conversations.insert().values(
                        conversation_id=record.conversation_id,
                        installed_by=record.installed_by,
                        installed_at=record.installed_at,
                        **values,
                    )
                )
                await session.execute(
                    subscriptions.insert().values(
                        conversation_id=record.conversation_id,
                        event_kinds=list(subscription.kinds),
                        filters=subscription.filters.to_json(),
                        created_at=record.installed_at,
                    )
                )
            return True
        except IntegrityError:
            pass  # already known: refresh the reference (the service URL may have moved)
        async with self._db.sessions.begin() as session:
            await session.execute(
                conversations.update()
                .where(conversations.c.conversation_id == record.conversation_id)
                .values(**values)
            )
        return False

    async def forget(self, conversation_id: str) -> bool:
        """Drop a conversation and its subscriptions; True when something was removed."""
        try:
            return await self._forget(conversation_id)
        finally:
            self.revision += 1

    async def _forget(self, conversation_id: str) -> bool:
        async with self._db.sessions.begin() as session:
            await session.execute(
                delete(subscriptions).where(subscriptions.c.conversation_id == conversation_id)
            )
            result = await session.execute(
                delete(conversations).where(conversations.c.conversation_id == conversation_id)
            )
            return bool(getattr(result, "rowcount", 0))

    async def forget_team(self, team_id: str) -> int:
        """The bot left a team: forget every channel of it."""
        try:
            return await self._forget_team(team_id)
        finally:
            self.revision += 1

    async def _forget_team(self, team_id: str) -> int:
        async with self._db.sessions.begin() as session:
            ids = (
                await session.scalars(
                    select(conversations.c.conversation_id).where(
                        conversations.c.team_id == team_id
                    )
                )
            ).all()
            if ids:
                await session.execute(
                    delete(subscriptions).where(subscriptions.c.conversation_id.in_(ids))
                )
                await session.execute(
                    delete(conversations).where(conversations.c.conversation_id.in_(ids))
                )
            return len(ids)

    async def get(self, conversation_id: str) -> ConversationRecord | None:
        async with self._db.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(conversations).where(conversations.c.conversation_id == conversation_id)
                )
            ).first()
        return _record(row._mapping) if row is not None else None

    async def all(self) -> list[ConversationRecord]:
        async with self._db.sessions() as session:
            rows = (
                await session.execute(select(conversations).order_by(conversations.c.installed_at))
            ).all()
        return [_record(row._mapping) for row in rows]

    async def subscribed(self, kind: str) -> list[ConversationRecord]:
        """Conversations subscribed to `kind` (filters aside), oldest installation first."""
        query = (
            select(conversations, subscriptions.c.event_kinds)
            .join(
                subscriptions,
                subscriptions.c.conversation_id == conversations.c.conversation_id,
            )
            .order_by(conversations.c.installed_at)
        )
        async with self._db.sessions() as session:
            rows = (await session.execute(query)).all()
        return [_record(row._mapping) for row in rows if kind in (row.event_kinds or [])]

    async def subscribers(
        self,
        *,
        workspace: str | None = None,
        job_name: str | None = None,
        session_id: int | None = None,
    ) -> Subscribers:
        """Every subscription, plus the experiment of a job (`workspace`, `job_name`) or of a
        session whose jobs share one experiment, in one query: routing an event costs one
        round trip however many conversations there are."""
        experiment: ColumnElement[Any]
        if workspace and job_name:
            experiment = (
                select(watched_jobs.c.experiment)
                .where(watched_jobs.c.workspace == workspace, watched_jobs.c.name == job_name)
                .limit(1)
                .scalar_subquery()
            )
        elif session_id is not None:
            experiment = (
                select(func.min(watched_jobs.c.experiment))
                .where(watched_jobs.c.session_id == session_id)
                .having(func.count(func.distinct(watched_jobs.c.experiment)) == 1)
                .scalar_subquery()
            )
        else:
            experiment = literal(None)
        query = (
            select(
                subscriptions.c.conversation_id,
                subscriptions.c.event_kinds,
                subscriptions.c.filters,
                experiment.label("experiment"),
            )
            .join(
                conversations,
                subscriptions.c.conversation_id == conversations.c.conversation_id,
            )
            .order_by(conversations.c.installed_at, conversations.c.conversation_id)
        )
        async with self._db.sessions() as session:
            rows = (await session.execute(query)).all()
        found = [
            (row.conversation_id, Subscription.from_stored(row.event_kinds, row.filters))
            for row in rows
        ]
        known = rows[0].experiment if rows else None
        return Subscribers(found, known if isinstance(known, str) and known else None)

    async def subscription(self, conversation_id: str) -> StoredSubscription | None:
        async with self._db.sessions() as session:
            row = (
                await session.execute(
                    select(
                        subscriptions.c.event_kinds,
                        subscriptions.c.filters,
                        subscriptions.c.updated_at,
                        subscriptions.c.updated_by,
                    ).where(subscriptions.c.conversation_id == conversation_id)
                )
            ).first()
        if row is None:
            return None
        return StoredSubscription(
            Subscription.from_stored(row.event_kinds, row.filters),
            as_utc(row.updated_at),
            row.updated_by,
        )

    async def save_subscription(
        self, conversation_id: str, subscription: Subscription, *, by: str, now: datetime
    ) -> bool:
        """Replace a known conversation's subscription; False when the conversation is unknown."""
        values = {
            "event_kinds": list(subscription.kinds),
            "filters": subscription.filters.to_json(),
            "updated_at": now,
            "updated_by": by[:256],
        }
        async with self._db.sessions.begin() as session:
            known = await session.scalar(
                select(conversations.c.conversation_id).where(
                    conversations.c.conversation_id == conversation_id
                )
            )
            if known is None:
                return False
            result = await session.execute(
                subscriptions.update()
                .where(subscriptions.c.conversation_id == conversation_id)
                .values(**values)
            )
            if not getattr(result, "rowcount", 0):
                await session.execute(
                    subscriptions.insert().values(
                        conversation_id=conversation_id, created_at=now, **values
                    )
                )
        return True

    async def event_kinds(self, conversation_id: str) -> list[str]:
        stored = await self.subscription(conversation_id)
        return list(stored.subscription.kinds) if stored is not None else []


def _record(row: Any) -> ConversationRecord:
    return ConversationRecord(
        conversation_id=row["conversation_id"],
        channel_id=row["channel_id"],
        service_url=row["service_url"],
        tenant_id=row["tenant_id"],
        conversation_type=row["conversation_type"],
        team_id=row["team_id"],
        title=row["title"],
        reference=row["reference"],
        installed_by=row["installed_by"],
        installed_at=row["installed_at"],
    )
