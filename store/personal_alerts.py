"""Who asked for their own failures in their personal chat (`notify me`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select

from store.database import Database
from store.group_commit import upsert
from store.tables import personal_alerts, watched_jobs

_MAX_PEOPLE = 5000


@dataclass(frozen=True, slots=True)
class PersonalAlert:
    user_id: str  # Entra object id
    conversation_id: str  # their personal chat with the bot
    upn: str | None
    name: str | None


class PersonalAlertStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(self, alert: PersonalAlert, now: datetime) -> None:
        values = {
            "conversation_id": alert.conversation_id,
            "upn": alert.upn,
            "name": alert.name,
            "created_at": now,
        }
        row = {"user_id": alert.user_id, **values}
        async with self._db.engine.begin() as conn:
            if not await upsert(conn, personal_alerts, [row], ["user_id"], values):
                raise RuntimeError("the store needs SQLite or PostgreSQL (INSERT … ON CONFLICT)")

    async def remove(self, user_id: str) -> bool:
        async with self._db.sessions.begin() as session:
            result = await session.execute(
                delete(personal_alerts).where(personal_alerts.c.user_id == user_id)
            )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def get(self, user_id: str) -> PersonalAlert | None:
        query = select(personal_alerts).where(personal_alerts.c.user_id == user_id)
        async with self._db.sessions() as session:
            row = (await session.execute(query)).first()
        return _alert(row) if row is not None else None

    async def everyone(self) -> list[PersonalAlert]:
        async with self._db.sessions() as session:
            rows = (await session.execute(select(personal_alerts).limit(_MAX_PEOPLE))).all()
        return [_alert(row) for row in rows]

    async def job_creator(self, workspace: str | None, job_name: str | None) -> str | None:
        if not workspace or not job_name:
            return None
        c = watched_jobs.c
        query = select(c.created_by).where(c.workspace == workspace, c.name == job_name)
        async with self._db.sessions() as session:
            found = await session.scalar(query)
        return str(found) if found else None


def _alert(row: object) -> PersonalAlert:
    mapping = row._mapping  # type: ignore[attr-defined]
    return PersonalAlert(
        mapping["user_id"], mapping["conversation_id"], mapping["upn"], mapping["name"]
    )
