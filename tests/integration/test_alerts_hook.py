"""POST /api/hooks/alerts over real HTTP on 127.0.0.1: secret, body checks, what it feeds."""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from monitoring.health import AlertCondition, AlertSignal
from service.alerts_hook import AlertsHook
from service.hook_auth import HookGuard

SECRET = "alert-s3cret"
# The hook's clock: the alert below fired 30 s before it.
NOW = dt.datetime(2025, 3, 1, 10, 10, tzinfo=dt.UTC)
ENDPOINT = (
    "/subscriptions/sub-1/resourcegroups/rg-mlops/providers/"
    "microsoft.machinelearningservices/workspaces/ws-plant/onlineendpoints/churn-prod"
)


def alert(condition: str = "Fired", schema: str = "azureMonitorCommonAlertSchema") -> Any:
    return {
        "schemaId": schema,
        "data": {
            "essentials": {
                "alertId": "/subscriptions/sub-1/providers/Microsoft.AlertsManagement/alerts/a1",
                "alertRule": "churn-prod 5xx",
                "severity": "Sev1",
                "signalType": "Metric",
                "monitorCondition": condition,
                "alertTargetIDs": [ENDPOINT],
                "firedDateTime": "2025-03-01T10:09:30.000Z",
            },
            "alertContext": {},
        },
    }


class Server:
    def __init__(self, url: str, session: aiohttp.ClientSession) -> None:
        self.url = url
        self.session = session
        self.signals: list[AlertSignal] = []

    async def post(
        self,
        body: Any = None,
        *,
        key: str | None = SECRET,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        params = {"key": key} if key is not None else {}
        async with self.session.post(
            f"{self.url}/api/hooks/alerts",
            params=params,
            json=body if raw is None else None,
            data=raw,
            headers=headers,
        ) as response:
            return response.status, await response.json(content_type=None)


async def _serve(secret: str) -> AsyncIterator[Server]:
    server: Server | None = None

    async def on_alert(signal: AlertSignal) -> int:
        assert server is not None
        server.signals.append(signal)
        return 1 if signal.targets(ENDPOINT) else 0

    app = web.Application()
    guard = HookGuard(
        "MLBOT_ALERTS_HOOK_SECRET", lambda: secret, lambda: NOW, lambda: dt.timedelta(minutes=15)
    )
    app.router.add_post("/api/hooks/alerts", AlertsHook(guard, on_alert).post)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    session = aiohttp.ClientSession()
    server = Server(f"http://127.0.0.1:{port}", session)
    try:
        yield server
    finally:
        await session.close()
        await runner.cleanup()


@pytest.fixture
async def hook() -> AsyncIterator[Server]:
    async for server in _serve(SECRET):
        yield server


@pytest.fixture
async def unconfigured() -> AsyncIterator[Server]:
    async for server in _serve(""):
        yield server


async def test_a_fired_alert_reaches_the_watch(hook: Server) -> None:
    status, body = await hook.post(alert("Fired"))
    assert (status, body) == (200, {"matched": 1})
    [signal] = hook.signals
    assert signal.condition is AlertCondition.FIRED
    assert signal.fired_at == dt.datetime(2025, 3, 1, 10, 9, 30, tzinfo=dt.UTC)


async def test_a_resolved_alert_reaches_the_watch(hook: Server) -> None:
    status, body = await hook.post(alert("Resolved"))
    assert (status, body) == (200, {"matched": 1})
    assert hook.signals[0].condition is AlertCondition.RESOLVED


async def test_basic_auth_password_is_accepted(hook: Server) -> None:
    token = base64.b64encode(f"azure:{SECRET}".encode()).decode()
    status, _ = await hook.post(alert(), key=None, headers={"Authorization": f"Basic {token}"})
    assert status == 200


@pytest.mark.parametrize("key", [None, "wrong"])
async def test_missing_or_wrong_secret_is_401(hook: Server, key: str | None) -> None:
    status, body = await hook.post(alert(), key=key)
    assert status == 401 and "key" in body["error"]
    assert hook.signals == []


async def test_refused_when_no_secret_is_configured(unconfigured: Server) -> None:
    status, body = await unconfigured.post(alert(), key="anything")
    assert status == 403 and "MLBOT_ALERTS_HOOK_SECRET" in body["error"]


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"[]",
        b'{"schemaId": "Microsoft.Insights/activityLogs", "data": {}}',
        b'{"schemaId": "azureMonitorCommonAlertSchema", "data": {}}',
        b"\xff\xfe",
    ],
)
async def test_malformed_bodies_are_400(hook: Server, raw: bytes) -> None:
    status, body = await hook.post(raw=raw, headers={"Content-Type": "application/json"})
    assert status == 400 and body["error"].startswith("not an Azure Monitor alert")
    assert hook.signals == []


async def test_unknown_condition_is_400(hook: Server) -> None:
    status, _ = await hook.post(alert("Flapping"))
    assert status == 400
