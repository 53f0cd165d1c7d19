"""Engine, sessions and schema migrations for mlbot's store."""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import event, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


@dataclass(frozen=True, slots=True)
class Readiness:
    ready: bool
    detail: str
    revision: str | None = None


def as_utc(value: datetime | None) -> datetime | None:
    """A stored datetime as UTC-aware: SQLite drops tzinfo, and everything mlbot stores is UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest revision among the migration scripts (parses every script: ~4 ms)."""
    heads = ScriptDirectory.from_config(_alembic_config()).get_heads()
    return heads[0]


class Database:
    """One engine per process; every repository is handed this object."""

    def __init__(
        self,
        url: str,
        *,
        connect_args: dict[str, Any] | None = None,
        read_head: Callable[[], str] = head_revision,
    ) -> None:
        parsed = make_url(url)
        sqlite = parsed.drivername.startswith("sqlite")
        on_disk = sqlite and parsed.database not in (None, "", ":memory:")
        if on_disk:
            # Default state lives under .mlbot/; create the folder rather than fail.
            Path(str(parsed.database)).parent.mkdir(parents=True, exist_ok=True)
        self.url = url
        # A pre-ping costs a round trip per checkout; only a network database can
        # drop connections behind our back. On SQLite every statement is a hop to
        # aiosqlite's thread, and the pool's rollback on check-in is one more per
        # transaction: every connection is handed out through a SQLAlchemy Connection,
        # which already commits or rolls back before it is returned.
        self.engine: AsyncEngine = create_async_engine(
            url,
            connect_args=connect_args or {},
            pool_pre_ping=not sqlite,
            pool_reset_on_return=None if sqlite else "rollback",
        )
        if on_disk:
            event.listen(self.engine.sync_engine, "connect", _write_ahead_log)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self._read_head = read_head
        self._head: str | None = None

    def guarded(self, check: Callable[[Connection], None]) -> Database:
        """A view on the same engine whose ORM transactions each start with `check`.

        `check` runs on the transaction's connection before anything else and may refuse
        it by raising; the leader's repositories use it for fencing (store/leader_lease.py).
        """
        view = copy.copy(self)
        session_class = type("GuardedSession", (Session,), {})

        def on_begin(_session: Session, _transaction: object, connection: Connection) -> None:
            check(connection)

        event.listen(session_class, "after_begin", on_begin)
        view.sessions = async_sessionmaker(
            self.engine, expire_on_commit=False, sync_session_class=session_class
        )
        return view

    def head(self) -> str:
        """The newest revision of the scripts this process runs with, read once.

        The scripts ship with the code and cannot change while it runs, and /readyz and
        /metrics ask on every call.
        """
        if self._head is None:
            self._head = self._read_head()
        return self._head

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    async def migrate(self) -> str:
        """Bring the schema to the newest revision; safe to call on every start-up."""

        def upgrade(connection: Connection) -> None:
            command.upgrade(_alembic_config(connection), "head")

        async with self.engine.begin() as conn:
            await conn.run_sync(upgrade)
        revision = self.head()
        log.info("database schema at revision %s (%s)", revision, self.dialect)
        return revision

    async def readiness(self) -> Readiness:
        """Reachable and migrated to the newest revision."""

        try:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
                revision = await _current_revision(conn)
        except Exception as exc:
            return Readiness(False, f"database unreachable: {type(exc).__name__}")
        head = self.head()
        if revision != head:
            return Readiness(False, f"schema at {revision}, expected {head}", revision)
        return Readiness(True, "ok", revision)

    async def dispose(self) -> None:
        await self.engine.dispose()


def _write_ahead_log(dbapi_connection: Any, _record: Any) -> None:
    """SQLite in write-ahead-log mode: a commit appends to the log and syncs it once,
    instead of writing, syncing and deleting a rollback journal; readers no longer wait
    for a writer. `synchronous` stays FULL, so a commit survives a power cut as before."""
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
    finally:
        cursor.close()


async def _current_revision(conn: AsyncConnection) -> str | None:
    """The revision Alembic recorded; None before the first migration.

    Read straight from Alembic's version table: building a MigrationContext for it costs
    about 3 ms, and /readyz and /metrics ask on every call.
    """
    try:
        value = await conn.scalar(text("SELECT version_num FROM alembic_version"))
    except DBAPIError:  # no version table: never migrated (the server answered SELECT 1)
        return None
    return None if value is None else str(value)
