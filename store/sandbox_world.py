"""Starting the sandbox's world afresh: the store's side of a `serve --sandbox` restart.

The emulated Azure plays its scenario from the beginning at every start, under the same
job names, run numbers and approval pipelines. Records of the previous run would say a
45-second job completed 12 minutes ago, make the new failures look already announced
(event keys are per job name) and the new runs already queued. So a sandbox start clears
what the store remembers of the emulated world and keeps what belongs to people: where
the bot is installed, subscriptions, the audit trail, and the used card nonces.

A database that holds anything from a workspace or endpoint outside the sandbox's
subscription is never cleared: that is someone's real data.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import Table, delete, func, select

from store.database import Database
from store.deployment_watches import deployment_watches
from store.tables import (
    deliveries,
    event_cursors,
    events,
    monitoring_sessions,
    pipeline_intents,
    posted_activities,
    watched_jobs,
)

# Everything the store derives from the emulated Azure, children before parents.
WORLD_TABLES: tuple[Table, ...] = (
    deliveries,
    posted_activities,
    event_cursors,
    pipeline_intents,
    events,
    deployment_watches,
    watched_jobs,
    monitoring_sessions,
)


class ForeignDataError(RuntimeError):
    """The database holds records of a real Azure subscription; the message says which."""


@dataclass(frozen=True, slots=True)
class ClearedWorld:
    jobs: int
    sessions: int
    events: int
    watches: int

    @property
    def anything(self) -> bool:
        return any((self.jobs, self.sessions, self.events, self.watches))


def _subscription_of(workspace_key: str) -> str:
    return workspace_key.split("/", 1)[0]


async def clear_sandbox_world(db: Database, subscriptions: Collection[str]) -> ClearedWorld:
    """Delete the previous sandbox run's records, in one transaction.

    `subscriptions` are the sandbox's (emulated) subscription ids; raises
    ForeignDataError, clearing nothing, when any record belongs to another one.
    """
    allowed = set(subscriptions)
    async with db.sessions.begin() as session:
        keys: set[str] = set()
        for column in (watched_jobs.c.workspace, monitoring_sessions.c.workspace):
            rows = await session.execute(select(column).where(column.is_not(None)).distinct())
            keys.update(str(key) for (key,) in rows.all())
        foreign = sorted(key for key in keys if _subscription_of(key) not in allowed)
        endpoints = await session.execute(
            select(deployment_watches.c.endpoint_resource_id).distinct()
        )
        foreign += sorted(
            str(resource)
            for (resource,) in endpoints.all()
            if not any(f"/subscriptions/{sub}/" in str(resource) for sub in allowed)
        )
        if foreign:
            raise ForeignDataError(
                "the database holds records of Azure resources outside the sandbox ("
                + ", ".join(foreign[:3])
                + (" …" if len(foreign) > 3 else "")
                + "); point MLBOT_DATABASE_URL at another database for sandbox mode"
            )

        async def count(table: Table) -> int:
            return int(await session.scalar(select(func.count()).select_from(table)) or 0)

        cleared = ClearedWorld(
            jobs=await count(watched_jobs),
            sessions=await count(monitoring_sessions),
            events=await count(events),
            watches=await count(deployment_watches),
        )
        for table in WORLD_TABLES:
            await session.execute(delete(table))
    return cleared
