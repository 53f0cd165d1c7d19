"""POST /api/hooks/devops over real HTTP, recording into a real monitoring store."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from cards.events import event_summary, render_event_card
from service.devops_hooks import APPROVAL_COMPLETED, DevOpsHook, store_recorder
from service.hook_auth import HookGuard
from store.database import Database
from store.monitoring import EventRecord, MonitoringStore
from tests.conftest import FixedClock
from tests.unit.test_devops_hooks import (
    approval_event,
    build_complete_event,
    run_state_event,
    stage_event,
)

SECRET = "hook-s3cret"


@dataclass
class HookServer:
    url: str
    store: MonitoringStore
    session: aiohttp.ClientSession
    pokes: list[int] = field(default_factory=list)
    now: datetime | None = None  # the hook's clock: notifications are sent as of now

    async def post(
        self,
        body: Any = None,
        *,
        key: str | None = SECRET,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any, dict[str, str]]:
        params = {"key": key} if key is not None else {}
        if isinstance(body, dict) and "createdDate" in body and self.now is not None:
            body = {**body, "createdDate": self.now.isoformat()}
        async with self.session.post(
            f"{self.url}/api/hooks/devops",
            params=params,
            json=body if raw is None else None,
            data=raw,
            headers=headers,
        ) as response:
            headers_out = {name.lower(): value for name, value in response.headers.items()}
            return response.status, await response.json(content_type=None), headers_out

    async def events(self) -> list[EventRecord]:
        return await self.store.events()


StartHook = Callable[[str], Awaitable[HookServer]]


@pytest.fixture
async def start_hook(database: Database, clock: FixedClock) -> AsyncIterator[StartHook]:
    runners: list[web.AppRunner] = []
    sessions: list[aiohttp.ClientSession] = []

    async def start(secret: str) -> HookServer:
        store = MonitoringStore(database)
        pokes: list[int] = []
        guard = HookGuard(
            "MLBOT_DEVOPS_HOOK_SECRET", lambda: secret, clock, lambda: timedelta(minutes=15)
        )
        # Parsing and recording only: confirming claims is tested in tests/security.
        record = store_recorder(store, clock, after=lambda: pokes.append(1))
        hook = DevOpsHook(guard, record, verifier=None)
        app = web.Application()
        app.router.add_post("/api/hooks/devops", hook.post)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        session = aiohttp.ClientSession()
        sessions.append(session)
        return HookServer(f"http://127.0.0.1:{port}", store, session, pokes, clock.now)

    yield start
    for session in sessions:
        await session.close()
    for runner in runners:
        await runner.cleanup()


def basic(password: str, user: str = "azure-devops") -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


# --- access ----------------------------------------------------------------------------


async def test_refused_when_no_secret_is_configured(start_hook: StartHook) -> None:
    server = await start_hook("")
    status, body, _ = await server.post(run_state_event(), key="anything")
    assert status == 403
    assert "MLBOT_DEVOPS_HOOK_SECRET" in body["error"]
    assert await server.events() == []


@pytest.mark.parametrize(
    ("key", "headers"),
    [
        (None, None),
        ("wrong", None),
        (None, basic("wrong")),
        (None, {"Authorization": "Bearer hook-s3cret"}),
        (None, {"Authorization": "Basic !!not-base64"}),
    ],
)
async def test_missing_or_wrong_credentials_are_401(
    start_hook: StartHook, key: str | None, headers: dict[str, str] | None
) -> None:
    server = await start_hook(SECRET)
    status, body, response_headers = await server.post(run_state_event(), key=key, headers=headers)
    assert status == 401
    assert "key" in body["error"]
    assert response_headers["www-authenticate"].startswith("Basic")
    assert await server.events() == []


async def test_basic_auth_password_is_accepted(start_hook: StartHook) -> None:
    server = await start_hook(SECRET)
    status, body, _ = await server.post(run_state_event(), key=None, headers=basic(SECRET))
    assert status == 200
    assert body == {"recorded": "deployment_completed", "new": True}


async def test_credentials_are_checked_before_the_body(start_hook: StartHook) -> None:
    server = await start_hook(SECRET)
    status, _, _ = await server.post(raw=b"{not json", key="wrong")
    assert status == 401


# --- bad input -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{not json", "Expecting"),
        (b"", "Expecting value"),
        (b"\xff\xfe\x00", "not an Azure DevOps service hook"),
        (b"[]", "not a JSON object"),
        (b'{"resource": {}}', "no eventType"),
        (b"[" * 100_000 + b"]" * 100_000, "not an Azure DevOps service hook"),
    ],
)
async def test_malformed_bodies_are_400_with_a_reason(
    start_hook: StartHook, raw: bytes, reason: str
) -> None:
    server = await start_hook(SECRET)
    status, body, _ = await server.post(raw=raw, headers={"Content-Type": "application/json"})
    assert status == 400
    assert body["error"].startswith("not an Azure DevOps service hook")
    assert reason in body["error"]
    assert await server.events() == []


@pytest.mark.parametrize(
    "raw",
    [
        b'{"eventType": "build.complete"}',
        b'{"eventType": "ms.vss-pipelines.run-state-changed-event", "resource": {}}',
    ],
)
async def test_deliveries_without_resource_details_are_accepted(
    start_hook: StartHook, raw: bytes
) -> None:
    # "Resource details to send: None / Minimal": a 400 would put the subscription on
    # probation. Nothing names the run here, so nothing is announced.
    server = await start_hook(SECRET)
    status, body, _ = await server.post(raw=raw, headers={"Content-Type": "application/json"})
    assert status == 200 and "ignored" in body
    assert await server.events() == []


# --- ignored ---------------------------------------------------------------------------


async def test_unknown_event_type_is_200_and_ignored(
    start_hook: StartHook, caplog: pytest.LogCaptureFixture
) -> None:
    server = await start_hook(SECRET)
    caplog.set_level("INFO", logger="service.devops_hooks")
    status, body, _ = await server.post({"eventType": "git.push", "resource": {"pushId": 14}})
    assert (status, body) == (200, {"ignored": "git.push"})
    assert "ignored event type git.push" in caplog.text
    assert SECRET not in caplog.text
    assert await server.events() == []


async def test_known_but_unannounced_events_are_not_recorded(start_hook: StartHook) -> None:
    server = await start_hook(SECRET)
    status, body, _ = await server.post(run_state_event(pipeline="training-pipeline"))
    assert status == 200
    assert body == {
        "ignored": "ms.vss-pipelines.run-state-changed-event",
        "kind": "pipeline_run_completed",
    }
    status, body, _ = await server.post(stage_event(name="Build"))
    assert body["kind"] == "stage_state_changed"
    assert await server.events() == []
    assert server.pokes == []


# --- recorded --------------------------------------------------------------------------


async def test_deploy_stage_is_recorded_once_and_renders(
    start_hook: StartHook, clock: FixedClock
) -> None:
    server = await start_hook(SECRET)
    status, body, _ = await server.post(stage_event(result="failed"))
    assert (status, body) == (200, {"recorded": "deployment_failed", "new": True})

    [event] = await server.events()
    assert event.kind == "deployment_failed"
    assert event.key.startswith("devops/run/812/stage/deploy_prod/completed/failed/")
    assert event.payload["environment"] == "prod"
    assert event.payload["run_id"] == 812
    assert event.payload["pipeline"] == "deployment-pipeline"
    assert event.payload["at"] == clock.now.isoformat()
    assert event.delivered_at is None  # the dispatcher delivers it
    assert server.pokes == [1]

    card = render_event_card(event)
    assert "Deployment to prod failed" in card["body"][0]["text"]
    assert event_summary(event) == "❌ Deployment to prod failed (deployment-pipeline #20261129.4)"

    # Azure DevOps redelivers when it did not see a 200 in time: the same notification.
    status, body, _ = await server.post(stage_event(result="failed"))
    assert (status, body) == (200, {"recorded": "deployment_failed", "new": False})
    assert len(await server.events()) == 1
    assert server.pokes == [1]


async def test_run_event_and_build_complete_of_one_run_make_one_event(
    start_hook: StartHook,
) -> None:
    server = await start_hook(SECRET)
    _, first, _ = await server.post(run_state_event(result="failed"))
    _, second, _ = await server.post(build_complete_event(result="failed"))
    assert first == {"recorded": "deployment_failed", "new": True}
    assert second == {"recorded": "deployment_failed", "new": False}
    assert len(await server.events()) == 1


async def test_approval_with_documented_nulls_then_its_decision(start_hook: StartHook) -> None:
    server = await start_hook(SECRET)
    status, body, _ = await server.post(approval_event())
    assert (status, body) == (200, {"recorded": "approval_required", "new": True})
    decided = approval_event(APPROVAL_COMPLETED, status="approved", step_status="approved")
    status, body, _ = await server.post(decided)
    assert (status, body) == (200, {"recorded": "approval_decided", "new": True})

    required, done = await server.events()
    assert required.key == "devops/approval/8b1d4e2f-0000-4000-8000-000000000a01/pending"
    assert required.payload["approval_id"] == "8b1d4e2f-0000-4000-8000-000000000a01"
    assert required.payload["pipeline"] is None and required.payload["stage"] is None
    assert required.payload["run_id"] == 812  # recovered from the message link
    assert required.payload["environment"] == "prod"
    card = render_event_card(required)
    assert card["actions"][0]["type"] == "Action.OpenUrl"
    assert card["actions"][0]["url"].startswith("https://dev.azure.com/")
    assert done.payload["comment"] == "Offline AUC 0.91, latency fine."
    assert event_summary(done) == "✅ Approved: deployment to prod"

    # A second pending notification for the same approval is the same happening.
    _, again, _ = await server.post(approval_event())
    assert again["new"] is False
    assert len(await server.events()) == 2
