"""SQLite is one replica: a second `mlbot serve` on the same database file refuses to start.

SQLite has no way to share the engine's work between processes (no row claims, no
advisory locks across hosts), so two processes on one file would both poll Azure ML and
both send every notification. The serving process holds an exclusive `flock` on a file
beside the database for as long as it runs; the lock goes away with the process, even
after `kill -9`, so a crashed replica never blocks its successor. Several replicas need
PostgreSQL (docs/deployment.md).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType

from sqlalchemy.engine import make_url


class DatabaseInUseError(RuntimeError):
    """Another process already serves from this SQLite file."""


def sqlite_file(url: str) -> Path | None:
    """The database file of a SQLite URL; None for other databases and in-memory ones."""
    parsed = make_url(url)
    if not parsed.drivername.startswith("sqlite") or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


class SingleReplicaLock:
    """Held by the one process serving from a SQLite file (a no-op for other databases)."""

    def __init__(self, url: str) -> None:
        database = sqlite_file(url)
        self.path = database.with_name(database.name + ".lock") if database else None
        self._fd: int | None = None

    def acquire(self) -> None:
        if self.path is None or self._fd is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            database = self.path.with_suffix("")
            raise DatabaseInUseError(
                f"another mlbot process{holder} already serves from {database}. SQLite "
                "holds one replica only: stop the other process, give this one another "
                "MLBOT_DATABASE_URL, or use PostgreSQL for several replicas."
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> SingleReplicaLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()


def _read_holder(fd: int) -> str:
    try:
        pid = os.pread(fd, 32, 0).decode().strip()
    except OSError:
        return ""
    return f" (pid {pid})" if pid.isdigit() else ""
