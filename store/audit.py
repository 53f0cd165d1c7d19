"""The audit trail: who did what, when, and whether it was allowed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from store.database import Database
from store.tables import audit_log


@dataclass(frozen=True, slots=True)
class AuditEntry:
    at: datetime
    action: str
    outcome: str  # ok | refused | failed
    actor_id: str | None = None
    actor_name: str | None = None
    tenant_id: str | None = None
    conversation_id: str | None = None
    target: str | None = None
    detail: str | None = None


class AuditTrail:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def record(self, entry: AuditEntry) -> None:
        async with self._db.sessions.begin() as session:
            await session.execute(
                audit_log.insert().values(
                    at=entry.at,
                    action=entry.action,
                    outcome=entry.outcome,
                    actor_id=entry.actor_id,
                    actor_name=entry.actor_name,
                    tenant_id=entry.tenant_id,
                    conversation_id=entry.conversation_id,
                    target=entry.target,
                    detail=entry.detail,
                )
            )

    async def recent(self, limit: int = 50) -> list[AuditEntry]:
        async with self._db.sessions() as session:
            rows = (
                await session.execute(
                    select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)
                )
            ).all()
        return [_entry(row._mapping) for row in rows]


def _entry(row: Any) -> AuditEntry:
    return AuditEntry(
        at=row["at"],
        action=row["action"],
        outcome=row["outcome"],
        actor_id=row["actor_id"],
        actor_name=row["actor_name"],
        tenant_id=row["tenant_id"],
        conversation_id=row["conversation_id"],
        target=row["target"],
        detail=row["detail"],
    )
