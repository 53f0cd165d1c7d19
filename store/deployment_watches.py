"""Durable health watches of fresh deployments (the auto-rollback safety net).

One row per deployment being watched after it reached an environment with
auto-rollback. The row holds the watch's schedule, the essentials of its
`monitoring.health.HealthState` (streaks, the failing checks a rollback cites, the
window's metric points for the card's chart) and what was done about it, so a
restarted bot resumes a watch where it stood and never queues a rollback twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, DateTime, Index, Integer, String, Table, and_, or_, select

from store.database import Database, as_utc
from store.tables import metadata

# Lifecycle of a watch:
#   watching -> rollback_pending (grace period, cancellable) -> queuing -> rolled_back
#   watching -> healthy | held (a rollback was due while another one is in progress)
#   rollback_pending -> cancelled | dry_run | rollback_failed
WATCHING = "watching"
ROLLBACK_PENDING = "rollback_pending"
QUEUING = "queuing"  # claimed for queuing; resolved through its pipeline intent
ROLLED_BACK = "rolled_back"
DRY_RUN = "dry_run"
CANCELLED = "cancelled"
HEALTHY = "healthy"
HELD = "held"
ROLLBACK_FAILED = "rollback_failed"
# Watches the timer still has work for (a `queuing` one whose outcome is not known yet
# is looked at again: its run is looked for, never queued twice).
DUE_STATUSES = (WATCHING, ROLLBACK_PENDING, QUEUING)

deployment_watches = Table(
    "deployment_watches",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    # `<environment>/<endpoint>/<deployment>/<run id>`: the same completed deployment
    # reported twice (hook redelivery, restart) finds the same watch.
    Column("key", String(512), nullable=False, unique=True),
    Column("environment", String(64), nullable=False, index=True),
    Column("endpoint_resource_id", String(1024), nullable=False),
    Column("deployment", String(256), nullable=False),
    Column("run_id", String(64), nullable=True),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("status", String(16), nullable=False),
    Column("state", JSON, nullable=False),
    # While rollback_pending this is the end of the grace period.
    Column("next_check_at", DateTime(timezone=True), nullable=True, index=True),
    Column("rollback_run_id", Integer, nullable=True),
    Column("cooldown_until", DateTime(timezone=True), nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    # Revision 0009: retention finds finished watches by age.
    Index("ix_deployment_watches_status_updated", "status", "updated_at"),
)


@dataclass(frozen=True, slots=True)
class WatchRecord:
    id: int
    key: str
    environment: str
    endpoint_resource_id: str
    deployment: str
    run_id: str | None
    started_at: datetime
    status: str
    state: dict[str, Any]
    next_check_at: datetime | None
    rollback_run_id: int | None
    cooldown_until: datetime | None
    updated_at: datetime

    @property
    def endpoint(self) -> str:
        """The endpoint's name: the last segment of its ARM id."""
        return self.endpoint_resource_id.rstrip("/").rsplit("/", 1)[-1]


def _record(row: Any) -> WatchRecord:
    started = as_utc(row["started_at"])
    updated = as_utc(row["updated_at"])
    assert started is not None and updated is not None
    state = row["state"]
    return WatchRecord(
        id=row["id"],
        key=row["key"],
        environment=row["environment"],
        endpoint_resource_id=row["endpoint_resource_id"],
        deployment=row["deployment"],
        run_id=row["run_id"],
        started_at=started,
        status=row["status"],
        state=dict(state) if isinstance(state, dict) else {},
        next_check_at=as_utc(row["next_check_at"]),
        rollback_run_id=row["rollback_run_id"],
        cooldown_until=as_utc(row["cooldown_until"]),
        updated_at=updated,
    )


class DeploymentWatchStore:
    """Repository of `deployment_watches`; every method is one short transaction."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def start_watch(
        self,
        *,
        key: str,
        environment: str,
        endpoint_resource_id: str,
        deployment: str,
        run_id: str | None,
        now: datetime,
        next_check_at: datetime,
        state: dict[str, Any] | None = None,
    ) -> tuple[WatchRecord, bool]:
        """The watch with this key, created if new; the flag says whether it was created."""
        async with self._db.sessions.begin() as session:
            row = (
                await session.execute(
                    select(deployment_watches).where(deployment_watches.c.key == key)
                )
            ).first()
            if row is not None:
                return _record(row._mapping), False
            await session.execute(
                deployment_watches.insert().values(
                    key=key,
                    environment=environment,
                    endpoint_resource_id=endpoint_resource_id,
                    deployment=deployment,
                    run_id=run_id,
                    started_at=now,
                    status=WATCHING,
                    state=state or {},
                    next_check_at=next_check_at,
                    updated_at=now,
                )
            )
            row = (
                await session.execute(
                    select(deployment_watches).where(deployment_watches.c.key == key)
                )
            ).first()
        assert row is not None
        return _record(row._mapping), True

    async def get(self, key: str) -> WatchRecord | None:
        async with self._db.sessions() as session:
            row = (
                await session.execute(
                    select(deployment_watches).where(deployment_watches.c.key == key)
                )
            ).first()
        return _record(row._mapping) if row else None

    async def due(self, now: datetime) -> list[WatchRecord]:
        """Watches whose next check (or end of grace) has come, oldest first."""
        query = (
            select(deployment_watches)
            .where(
                and_(
                    deployment_watches.c.status.in_(DUE_STATUSES),
                    deployment_watches.c.next_check_at <= now,
                )
            )
            .order_by(deployment_watches.c.next_check_at, deployment_watches.c.id)
        )
        async with self._db.sessions() as session:
            rows = (await session.execute(query)).all()
        return [_record(row._mapping) for row in rows]

    async def watching(self) -> list[WatchRecord]:
        """Every watch still judging its deployment (alerts can feed them)."""
        query = (
            select(deployment_watches)
            .where(deployment_watches.c.status == WATCHING)
            .order_by(deployment_watches.c.id)
        )
        async with self._db.sessions() as session:
            rows = (await session.execute(query)).all()
        return [_record(row._mapping) for row in rows]

    async def with_status(self, environment: str, status: str) -> list[WatchRecord]:
        query = (
            select(deployment_watches)
            .where(
                and_(
                    deployment_watches.c.environment == environment,
                    deployment_watches.c.status == status,
                )
            )
            .order_by(deployment_watches.c.id)
        )
        async with self._db.sessions() as session:
            rows = (await session.execute(query)).all()
        return [_record(row._mapping) for row in rows]

    async def next_due_at(self) -> datetime | None:
        """When the timer should next fire for a watch; None when nothing is scheduled."""
        query = (
            select(deployment_watches.c.next_check_at)
            .where(
                and_(
                    deployment_watches.c.status.in_(DUE_STATUSES),
                    deployment_watches.c.next_check_at.is_not(None),
                )
            )
            .order_by(deployment_watches.c.next_check_at)
            .limit(1)
        )
        async with self._db.sessions() as session:
            value = await session.scalar(query)
        return as_utc(value)

    async def save(
        self,
        watch_id: int,
        *,
        now: datetime,
        status: str,
        state: dict[str, Any],
        next_check_at: datetime | None,
        expected_status: str | None = None,
        rollback_run_id: int | None = None,
        cooldown_until: datetime | None = None,
    ) -> bool:
        """Write a watch's new standing. With `expected_status` only if the row still has
        it (a compare-and-set: a cancel and the end of grace cannot both win)."""
        condition = deployment_watches.c.id == watch_id
        if expected_status is not None:
            condition = and_(condition, deployment_watches.c.status == expected_status)
        values: dict[str, Any] = {
            "status": status,
            "state": state,
            "next_check_at": next_check_at,
            "updated_at": now,
        }
        if rollback_run_id is not None:
            values["rollback_run_id"] = rollback_run_id
        if cooldown_until is not None:
            values["cooldown_until"] = cooldown_until
        async with self._db.sessions.begin() as session:
            result = await session.execute(
                deployment_watches.update().where(condition).values(**values)
            )
        return bool(getattr(result, "rowcount", 0))

    async def transition(
        self, watch_id: int, *, expected_status: str, status: str, now: datetime
    ) -> bool:
        """Move a watch from one status to another if nobody moved it first."""
        async with self._db.sessions.begin() as session:
            result = await session.execute(
                deployment_watches.update()
                .where(
                    and_(
                        deployment_watches.c.id == watch_id,
                        deployment_watches.c.status == expected_status,
                    )
                )
                .values(status=status, updated_at=now)
            )
        return bool(getattr(result, "rowcount", 0))

    async def active_rollback(
        self, environment: str, now: datetime, *, excluding: int | None = None
    ) -> WatchRecord | None:
        """A rollback of this environment that is pending, being queued, or queued and
        still in its cooldown: while there is one, no second rollback starts."""
        busy = or_(
            deployment_watches.c.status.in_((ROLLBACK_PENDING, QUEUING)),
            and_(
                deployment_watches.c.status == ROLLED_BACK,
                deployment_watches.c.cooldown_until > now,
            ),
        )
        query = (
            select(deployment_watches)
            .where(and_(deployment_watches.c.environment == environment, busy))
            .order_by(deployment_watches.c.id.desc())
        )
        if excluding is not None:
            query = query.where(deployment_watches.c.id != excluding)
        async with self._db.sessions() as session:
            row = (await session.execute(query.limit(1))).first()
        return _record(row._mapping) if row else None

    async def in_cooldown(
        self, environment: str, endpoint_resource_id: str, deployment: str, now: datetime
    ) -> WatchRecord | None:
        """A rollback of this very deployment still in its cooldown: one per deployment."""
        query = (
            select(deployment_watches)
            .where(
                and_(
                    deployment_watches.c.environment == environment,
                    deployment_watches.c.endpoint_resource_id == endpoint_resource_id,
                    deployment_watches.c.deployment == deployment,
                    deployment_watches.c.cooldown_until > now,
                )
            )
            .order_by(deployment_watches.c.id.desc())
            .limit(1)
        )
        async with self._db.sessions() as session:
            row = (await session.execute(query)).first()
        return _record(row._mapping) if row else None
