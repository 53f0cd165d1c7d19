"""Shared fixtures: a running bot over real HTTP, its connector stand-in, databases."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from app import (
    Runtime,
    SandboxOptions,
    build_runtime,
    sandbox_settings,
    start_sandbox,
    start_sandbox_world_afresh,
)
from bot.auth import TokenValidationEndpoints
from config.settings import Settings, settings_from_mapping
from sandbox.clock import ManualClock
from sandbox.stack import SandboxStack
from store.database import Database
from tests.standins.connector import ConnectorStandIn

POSTGRES_URL = os.environ.get("MLBOT_TEST_POSTGRES_URL", "")


@pytest.fixture
async def connector() -> AsyncIterator[ConnectorStandIn]:
    stand_in = ConnectorStandIn()
    await stand_in.start()
    yield stand_in
    await stand_in.stop()


@dataclass
class BotServer:
    url: str
    runtime: Runtime
    session: aiohttp.ClientSession

    async def post(
        self, activity: Any, *, headers: dict[str, str] | None = None, raw: bytes | None = None
    ) -> tuple[int, Any]:
        send_headers = {"Content-Type": "application/json", **(headers or {})}
        async with self.session.post(
            f"{self.url}/api/messages",
            data=raw if raw is not None else None,
            json=activity if raw is None else None,
            headers=send_headers,
        ) as response:
            text = await response.text()
            try:
                body = await response.json(content_type=None) if text else None
            except ValueError:
                body = text
            return response.status, body

    async def get(self, path: str) -> tuple[int, Any]:
        async with self.session.get(f"{self.url}{path}") as response:
            return response.status, await response.json(content_type=None)


StartBot = Callable[..., Awaitable[BotServer]]


class FixedClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime(2026, 11, 29, 12, 0, tzinfo=UTC))


@pytest.fixture
async def start_bot(tmp_path: Path, clock: FixedClock) -> AsyncIterator[StartBot]:
    runners: list[web.AppRunner] = []
    sessions: list[aiohttp.ClientSession] = []

    async def start(
        settings: dict[str, Any] | None = None,
        *,
        token_endpoints: TokenValidationEndpoints | None = None,
        credentials_factory: Any = None,
    ) -> BotServer:
        values = {
            "MLBOT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/bot-{uuid.uuid4().hex}.db",
            # Local-mode tests press approve / rollback / retry, as on a developer's machine.
            "MLBOT_LOCAL_ACTIONS": "true",
        }
        values.update(settings or {})
        runtime = await build_runtime(
            settings_from_mapping(values),
            token_endpoints=token_endpoints,
            credentials_factory=credentials_factory,
            clock=clock,
        )
        runner = web.AppRunner(runtime.web_app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        session = aiohttp.ClientSession()
        sessions.append(session)
        return BotServer(f"http://127.0.0.1:{port}", runtime, session)

    yield start
    for session in sessions:
        await session.close()
    for runner in runners:
        await runner.cleanup()


def _database_params() -> list[Any]:
    params: list[Any] = [pytest.param("sqlite", id="sqlite")]
    params.append(
        pytest.param(
            "postgres",
            id="postgres",
            marks=[
                pytest.mark.postgres,
                pytest.mark.skipif(not POSTGRES_URL, reason="MLBOT_TEST_POSTGRES_URL not set"),
            ],
        )
    )
    return params


@pytest.fixture(params=_database_params())
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """A migrated, empty store on SQLite and (when configured) PostgreSQL."""
    if request.param == "sqlite":
        db = Database(f"sqlite+aiosqlite:///{tmp_path}/store.db")
        await db.migrate()
        yield db
        await db.dispose()
        return
    # Each test gets its own schema, so runs never see each other's rows.
    schema = f"mlbot_test_{uuid.uuid4().hex[:12]}"
    admin = Database(POSTGRES_URL)
    async with admin.engine.begin() as conn:
        await conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    db = Database(POSTGRES_URL, connect_args={"server_settings": {"search_path": schema}})
    try:
        await db.migrate()
        yield db
    finally:
        await db.dispose()
        async with admin.engine.begin() as conn:
            await conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        await admin.dispose()


def make_settings(**values: Any) -> Settings:
    return settings_from_mapping(values)


SANDBOX_START = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)


async def serve_app(app: web.Application) -> tuple[web.AppRunner, str]:
    """Serve an aiohttp app on a free loopback port; returns the runner and base URL."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


@dataclass
class SandboxBot:
    """The bot over real HTTP, wired to the sandbox emulators on a manual clock."""

    runtime: Runtime
    stack: SandboxStack
    clock: ManualClock
    url: str
    session: aiohttp.ClientSession

    @property
    def server(self) -> BotServer:
        return BotServer(self.url, self.runtime, self.session)


StartSandboxBot = Callable[..., Awaitable[SandboxBot]]


@pytest.fixture
async def start_sandbox_bot(tmp_path: Path) -> AsyncIterator[StartSandboxBot]:
    cleanups: list[Callable[[], Awaitable[None]]] = []

    async def start(
        settings: dict[str, Any] | None = None, *, scenario: Path | None = None
    ) -> SandboxBot:
        clock = ManualClock(SANDBOX_START)
        values = {
            "MLBOT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/sandbox-{uuid.uuid4().hex}.db",
            "MLBOT_SANDBOX": "true",
            **(settings or {}),
        }
        configured = settings_from_mapping(values)
        stack, clients = await start_sandbox(
            configured, SandboxOptions(scenario=scenario, clock=clock, tick_interval_s=None)
        )
        cleanups.append(stack.stop)
        configured = sandbox_settings(configured, stack)  # as `mlbot serve --sandbox` does
        runtime = await build_runtime(configured, azure=clients, clock=clock.now, background=False)
        await start_sandbox_world_afresh(runtime.db, stack)  # as `mlbot serve --sandbox` does
        runner, url = await serve_app(runtime.web_app)
        cleanups.append(runner.cleanup)
        session = aiohttp.ClientSession()
        cleanups.append(session.close)
        return SandboxBot(runtime, stack, clock, url, session)

    yield start
    for cleanup in reversed(cleanups):
        await cleanup()
