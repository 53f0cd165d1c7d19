"""A second process on the same SQLite file refuses to serve; PostgreSQL is never locked."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from store.replica_lock import DatabaseInUseError, SingleReplicaLock, sqlite_file

pytestmark = pytest.mark.slow  # a second process holds the database

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


def test_a_second_holder_of_the_same_file_is_refused(tmp_path: Path) -> None:
    url = _url(tmp_path / "mlbot.db")
    with SingleReplicaLock(url):
        with pytest.raises(DatabaseInUseError) as refused:
            SingleReplicaLock(url).acquire()
        message = str(refused.value)
        assert "mlbot.db" in message and "PostgreSQL" in message and "MLBOT_DATABASE_URL" in message
    # Released: the next process may serve.
    with SingleReplicaLock(url):
        pass


def test_another_process_is_refused_and_a_killed_holder_frees_the_file(tmp_path: Path) -> None:
    url = _url(tmp_path / "mlbot.db")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys, time
                from store.replica_lock import SingleReplicaLock
                SingleReplicaLock({url!r}).acquire()
                print("held", flush=True)
                time.sleep(600)
                """
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(DatabaseInUseError, match=rf"pid {holder.pid}"):
            SingleReplicaLock(url).acquire()
    finally:
        holder.kill()
        holder.wait()
    with SingleReplicaLock(url):  # kill -9 released it
        pass


def test_only_sqlite_files_are_locked(tmp_path: Path) -> None:
    assert sqlite_file("postgresql+asyncpg://postgres@127.0.0.1:5432/test") is None
    assert sqlite_file("sqlite+aiosqlite:///:memory:") is None
    assert sqlite_file(_url(tmp_path / "x.db")) == tmp_path / "x.db"
    lock = SingleReplicaLock("postgresql+asyncpg://postgres@127.0.0.1:5432/test")
    lock.acquire()
    SingleReplicaLock("postgresql+asyncpg://postgres@127.0.0.1:5432/test").acquire()
    assert lock.path is None


def test_mlbot_serve_on_a_file_another_process_serves_from_exits_with_the_reason(
    tmp_path: Path,
) -> None:
    database = tmp_path / "mlbot.db"
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("MLBOT_", "MICROSOFT", "Microsoft", "AZURE_"))
    }
    env.update(
        MLBOT_DATABASE_URL=_url(database),
        MLBOT_SANDBOX="false",
        MLBOT_HOST="127.0.0.1",
        MLBOT_PORT=str(_free_port()),
        PYTHONPATH=str(ROOT),
    )
    with SingleReplicaLock(_url(database)):
        finished = subprocess.run(
            [sys.executable, "-c", "import sys, cli; sys.exit(cli.main(['serve']))"],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,  # without the lock the process would serve until killed
        )
    assert finished.returncode == 2, finished.stderr
    assert "already serves from" in finished.stderr
    assert str(database) in finished.stderr
    assert "listening" not in finished.stderr
