"""The leader lease in PostgreSQL: taking and renewing it, and fencing the leader's writes.

One row (`leader_lease`, name "engine") holds the owner, an epoch that grows with each
new holder, and an expiry computed by the database's clock. Taking, renewing and taking
over are one conditional UPDATE each, so two replicas can never both succeed.

Fencing: the leader's repositories open every transaction with `fence_check`, which
locks the lease row in share mode and requires it to still carry this replica's owner
and epoch, unexpired. A replica that lost the lease gets `LeaseLostError` instead of
writing; and because a takeover UPDATE waits for those share locks, a new leader starts
only after the old leader's last admitted transaction has ended.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import text
from sqlalchemy.engine import Connection

from domain.leadership import FenceToken, LeaseRecord
from store.database import Database

LEASE_NAME = "engine"

# Renew our own unexpired lease (same epoch), or take an expired one (epoch + 1).
_CLAIM = text(
    """
    UPDATE leader_lease SET
        epoch = CASE WHEN owner = :owner AND epoch = :epoch AND expires_at > clock_timestamp()
                     THEN epoch ELSE epoch + 1 END,
        acquired_at = CASE WHEN owner = :owner AND epoch = :epoch
                                AND expires_at > clock_timestamp()
                           THEN acquired_at ELSE clock_timestamp() END,
        owner = :owner,
        renewed_at = clock_timestamp(),
        expires_at = clock_timestamp() + make_interval(secs => :duration)
    WHERE name = :name
      AND ((owner = :owner AND epoch = :epoch AND expires_at > clock_timestamp())
           OR expires_at <= clock_timestamp())
    RETURNING owner, epoch
    """
)
_READ = text(
    "SELECT owner, epoch, expires_at > clock_timestamp() AS valid "
    "FROM leader_lease WHERE name = :name"
)
_RELEASE = text(
    "UPDATE leader_lease SET expires_at = clock_timestamp() "
    "WHERE name = :name AND owner = :owner AND epoch = :epoch"
)
_FENCE = text(
    "SELECT 1 FROM leader_lease WHERE name = :name AND owner = :owner AND epoch = :epoch "
    "AND expires_at > clock_timestamp() FOR SHARE"
)


class LeaseLostError(RuntimeError):
    """This replica no longer holds the lease: the write was refused."""


class LeaseStore:
    """The lease row of one PostgreSQL database."""

    def __init__(self, db: Database, *, name: str = LEASE_NAME, lock_timeout_s: float = 2.0):
        self._db = db
        self._name = name
        self._lock_timeout_ms = int(lock_timeout_s * 1000)

    async def claim(self, owner: str, epoch: int | None, duration_s: float) -> LeaseRecord:
        """Renew `owner`'s lease at `epoch`, or take the lease if it has expired."""
        async with self._db.engine.begin() as conn:
            # A leader's transaction in flight holds the row in share mode: wait for it a
            # little, never for ever (the next attempt comes soon).
            await conn.exec_driver_sql(f"SET LOCAL lock_timeout = {self._lock_timeout_ms}")
            row = (
                await conn.execute(
                    _CLAIM,
                    {
                        "name": self._name,
                        "owner": owner,
                        "epoch": -1 if epoch is None else epoch,
                        "duration": float(duration_s),
                    },
                )
            ).first()
            if row is not None:
                return LeaseRecord(owner=str(row.owner), epoch=int(row.epoch), held=True)
            current = (await conn.execute(_READ, {"name": self._name})).first()
        if current is None:
            raise LookupError(f"the leader_lease row {self._name!r} is missing (migrate the store)")
        return LeaseRecord(
            owner=str(current.owner),
            epoch=int(current.epoch),
            held=False,
            valid=bool(current.valid),
        )

    async def release(self, owner: str, epoch: int) -> None:
        """Give the lease up now, so a successor need not wait for it to expire."""
        async with self._db.engine.begin() as conn:
            await conn.execute(_RELEASE, {"name": self._name, "owner": owner, "epoch": epoch})


def fence_check(
    token: Callable[[], FenceToken | None], *, name: str = LEASE_NAME, idle_timeout_s: float = 20.0
) -> Callable[[Connection], None]:
    """The check that opens each of the leader's transactions (see `Database.guarded`)."""
    idle_ms = int(idle_timeout_s * 1000)

    def check(connection: Connection) -> None:
        held = token()
        if held is None:
            raise LeaseLostError("this replica does not hold the leader lease")
        row = connection.execute(
            _FENCE, {"name": name, "owner": held.owner, "epoch": held.epoch}
        ).first()
        if row is None:
            raise LeaseLostError(f"the leader lease moved on from epoch {held.epoch}")
        # A leader frozen inside a transaction must not hold the row (and so a takeover)
        # for longer than a lease.
        connection.exec_driver_sql(f"SET LOCAL idle_in_transaction_session_timeout = {idle_ms}")

    return check
