"""Where the bot is installed: conversation references for proactive messages."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from store.database import Database
from store.tables import conversations, subscriptions


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


# Every event kind but "training started": the default for a new installation.
DEFAULT_EVENT_KINDS: tuple[str, ...] = (
    "training_completed",
    "training_failed",
    "training_timed_out",
    "long_running",
    "approval_required",
    "deployment_completed",
    "deployment_failed",
    "rollback",
)


class ConversationStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def remember(self, record: ConversationRecord) -> bool:
        """Store or refresh a conversation; True when it was new (then subscribe defaults).

        Teams sends `conversationUpdate` and `installationUpdate` for one install at the
        same moment; whichever inserts second sees the conflict and refreshes instead.
        """
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
                        event_kinds=list(DEFAULT_EVENT_KINDS),
                        filters={},
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
        async with self._db.sessions() as session:
            row = (
                await session.execute(
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
        """Conversations subscribed to `kind`, oldest installation first, in one query."""
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
        found: dict[str, ConversationRecord] = {}
        for row in rows:
            mapping = row._mapping
            if kind in mapping["event_kinds"] and mapping["conversation_id"] not in found:
                found[mapping["conversation_id"]] = _record(mapping)
        return list(found.values())

    async def event_kinds(self, conversation_id: str) -> list[str]:
        async with self._db.sessions() as session:
            rows = (
                await session.scalars(
                    select(subscriptions.c.event_kinds).where(
                        subscriptions.c.conversation_id == conversation_id
                    )
                )
            ).all()
        kinds: list[str] = []
        for row in rows:
            kinds.extend(k for k in row if k not in kinds)
        return kinds


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
