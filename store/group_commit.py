"""Writes from concurrent tasks share one transaction (group commit).

The delivery worker sends to many conversations at once, and every send needs a few
small writes (an idempotency key before the POST, the activity id after it, the
delivery row). A transaction costs far more than the statements in it, so writes that
arrive while one commit is under way wait for the next and go together: the commit
rate stays bounded however many sends run, and a lone write is not delayed at all.

Each caller still learns that *its* write is committed before it goes on, so the order
"key committed, then POST" holds exactly as with a transaction of its own. A batch that
fails is rolled back and its writes are retried one by one, so one bad write cannot
fail the others.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy import Table, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from store.database import Database

T = TypeVar("T")
Write = Callable[[AsyncConnection], Awaitable[Any]]


class GroupCommit:
    """Runs write callbacks, each committed before its caller resumes, several per commit."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._queue: list[tuple[Write, asyncio.Future[Any]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def run(self, write: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """Run `write` in a transaction shared with concurrent writes; its result once committed."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queue.append((write, future))
        flusher = self._flusher
        if flusher is None or flusher.done() or flusher.get_loop() is not loop:
            self._flusher = asyncio.create_task(self._flush())
        # Shielded: a caller that is cancelled must not cancel the others' commit.
        result: T = await asyncio.shield(future)
        return result

    async def _flush(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue, []
                await self._commit(batch)
        finally:
            for _, future in self._queue:  # only reached if this task was cancelled
                if not future.done():
                    future.set_exception(RuntimeError("the store shut down before this write"))
            self._queue = []

    async def _commit(self, batch: list[tuple[Write, asyncio.Future[Any]]]) -> None:
        try:
            async with self._db.engine.begin() as conn:
                results = [await write(conn) for write, _ in batch]
        except Exception:
            # Rolled back as a whole: each write is tried once more alone, so one bad
            # write fails only its caller, and a write that lost a race with another
            # process (a row inserted in between) sees that row this time.
            for write, future in batch:
                try:
                    async with self._db.engine.begin() as conn:
                        result = await write(conn)
                except Exception as alone:
                    _settle(future, exc=alone)
                else:
                    _settle(future, result=result)
            return
        for (_, future), result in zip(batch, results, strict=True):
            _settle(future, result=result)


def _settle(
    future: asyncio.Future[Any], *, result: Any = None, exc: Exception | None = None
) -> None:
    if future.done():
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)


def _insert(conn: AsyncConnection, table: Table) -> Any:
    """The database's own INSERT (with ON CONFLICT), or None where it has none."""
    dialect = conn.dialect.name
    if dialect == "sqlite":
        return sqlite.insert(table)
    if dialect == "postgresql":
        return postgresql.insert(table)
    return None


async def insert_new(
    conn: AsyncConnection, table: Table, values: dict[str, Any], unique: list[str]
) -> bool:
    """Insert a row unless one with the same `unique` columns exists; True if inserted.

    False also where the database has no such statement: the caller then looks first.
    """
    statement = _insert(conn, table)
    if statement is None:
        return False
    result = await conn.execute(
        statement.values(**values).on_conflict_do_nothing(index_elements=unique)
    )
    return bool(result.rowcount)


async def upsert(
    conn: AsyncConnection,
    table: Table,
    rows: list[dict[str, Any]],
    unique: list[str],
    update: dict[str, Any],
) -> bool:
    """Insert `rows`, or apply `update` to the rows they collide with; True if done.

    False where the database has no such statement: the caller then updates and inserts.
    """
    statement = _insert(conn, table)
    if statement is None:
        return False
    # One row goes as `values(**row)`: SQLAlchemy caches that statement's compiled form,
    # while a multi-row VALUES is compiled afresh on every call.
    values = statement.values(**rows[0]) if len(rows) == 1 else statement.values(rows)
    await conn.execute(values.on_conflict_do_update(index_elements=unique, set_=update))
    return True


async def insert_new_rows(
    conn: AsyncConnection, table: Table, rows: list[dict[str, Any]], unique: list[str]
) -> None:
    """Insert those of `rows` whose `unique` columns are not taken yet, in the order given."""
    statement = _insert(conn, table)
    if statement is None:
        for row in rows:  # a database without ON CONFLICT: look first
            where = [table.c[name] == row[name] for name in unique]
            if (await conn.execute(select(table.c[unique[0]]).where(*where))).first() is None:
                await conn.execute(table.insert().values(**row))
        return
    for start in range(0, len(rows), 200):
        await conn.execute(
            statement.values(rows[start : start + 200]).on_conflict_do_nothing(
                index_elements=unique
            )
        )
