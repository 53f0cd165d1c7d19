"""Azure Monitor's common alert schema, as published, posted to /api/hooks/alerts.

Sources (MicrosoftDocs/azure-docs), stored verbatim:
- `articles/azure-monitor/alerts/alerts-payload-samples.md` at
  089ac02d93fe1347195804b47f92a115c3fde91b: "Sample alert payload" (a metric alert,
  `monitorCondition: Resolved`) -> examples/alerts_common_schema_metric_resolved.json, and
  "Metric alert with a static threshold" (its `alertContext`, with the window)
  -> examples/alerts_metric_static_threshold_context.json;
- `articles/azure-monitor/alerts/alerts-common-schema.md` at
  065230747b050d11d770eabd245914b8c49a8f73: the "Essentials fields" table, which spells
  the targets `alertTargetIds` where the samples send `alertTargetIDs`.

No full *fired* sample is published: the fired alert here is the published payload with
`monitorCondition: Fired`, no `resolvedDateTime`, and the static-threshold context (the
same rule, while its condition holds). The samples target a virtual machine under
`/subscriptions/<subscription ID>/`; the tests put a watched online endpoint there, lower
cased as Azure sends it. The hook's clock is set just after the sample's times.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from monitoring.health import AlertCondition, AlertSignal, parse_common_alert
from service.alerts_hook import AlertsHook
from service.hook_auth import HookGuard

EXAMPLES = Path(__file__).parent / "examples"
SECRET = "published-alerts-secret"
UTC = dt.UTC
WATCHED = (
    "/subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/rg-mlops/providers/"
    "Microsoft.MachineLearningServices/workspaces/ws-plant/onlineEndpoints/churn-prod"
)


def _example(name: str) -> dict[str, Any]:
    body = json.loads((EXAMPLES / name).read_text())
    assert isinstance(body, dict)
    return body


def resolved(target: str | None = WATCHED) -> dict[str, Any]:
    body = copy.deepcopy(_example("alerts_common_schema_metric_resolved.json"))
    if target is not None:
        body["data"]["essentials"]["alertTargetIDs"] = [target.lower()]
    return body


def fired(target: str | None = WATCHED) -> dict[str, Any]:
    body = resolved(target)
    essentials = body["data"]["essentials"]
    essentials["monitorCondition"] = "Fired"
    del essentials["resolvedDateTime"]
    body["data"]["alertContext"] = _example("alerts_metric_static_threshold_context.json")[
        "alertContext"
    ]
    return body


def test_the_published_resolved_alert_as_it_stands() -> None:
    signal = parse_common_alert(_example("alerts_common_schema_metric_resolved.json"))

    assert signal.condition is AlertCondition.RESOLVED
    assert (signal.rule, signal.severity, signal.signal_type) == ("WCUS-R2-Gen2", "Sev3", "Metric")
    assert signal.fired_at == dt.datetime(2019, 3, 22, 13, 58, 24, 371321, tzinfo=UTC)
    assert signal.resolved_at == dt.datetime(2019, 3, 22, 14, 3, 16, 224631, tzinfo=UTC)
    assert signal.at == signal.resolved_at
    (criterion,) = signal.criteria
    assert (criterion.metric_name, criterion.operator, criterion.threshold) == (
        "Percentage CPU",
        "GreaterThan",
        "25",
    )
    assert criterion.time_aggregation == "Average" and criterion.metric_value == 7.727
    # A virtual machine: no watched endpoint is concerned.
    assert not signal.targets(WATCHED)


def test_the_field_tables_spelling_of_the_targets_is_read() -> None:
    body = resolved()
    essentials = body["data"]["essentials"]
    essentials["alertTargetIds"] = essentials.pop("alertTargetIDs")

    assert parse_common_alert(body).targets(WATCHED)


@dataclass
class Endpoint:
    url: str
    session: aiohttp.ClientSession
    clock: list[dt.datetime]
    signals: list[AlertSignal] = field(default_factory=list)

    async def post(self, body: Any) -> tuple[int, Any]:
        signal = parse_common_alert(body)
        assert signal.at is not None
        self.clock[0] = signal.at + dt.timedelta(seconds=20)
        async with self.session.post(
            f"{self.url}/api/hooks/alerts", params={"key": SECRET}, json=body
        ) as response:
            return response.status, await response.json(content_type=None)


@pytest.fixture
async def endpoint() -> AsyncIterator[Endpoint]:
    clock = [dt.datetime(2019, 3, 22, 14, 5, tzinfo=UTC)]
    signals: list[AlertSignal] = []

    async def on_alert(signal: AlertSignal) -> int:
        signals.append(signal)
        return 1 if signal.targets(WATCHED) else 0

    guard = HookGuard(
        "MLBOT_ALERTS_HOOK_SECRET",
        lambda: SECRET,
        lambda: clock[0],
        lambda: dt.timedelta(minutes=15),
    )
    app = web.Application()
    app.router.add_post("/api/hooks/alerts", AlertsHook(guard, on_alert).post)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    async with aiohttp.ClientSession() as session:
        yield Endpoint(f"http://127.0.0.1:{port}", session, clock, signals)
    await runner.cleanup()


async def test_a_fired_metric_alert_on_a_watched_endpoint(endpoint: Endpoint) -> None:
    status, answer = await endpoint.post(fired())

    assert (status, answer) == (200, {"matched": 1})
    (signal,) = endpoint.signals
    assert signal.condition is AlertCondition.FIRED and signal.resolved_at is None
    assert signal.at == dt.datetime(2019, 3, 22, 13, 58, 24, 371321, tzinfo=UTC)
    assert signal.criteria[0].metric_value == 31.1105


async def test_a_resolved_metric_alert_on_a_watched_endpoint(endpoint: Endpoint) -> None:
    status, answer = await endpoint.post(resolved())

    assert (status, answer) == (200, {"matched": 1})
    assert endpoint.signals[0].condition is AlertCondition.RESOLVED


async def test_the_published_alert_about_a_virtual_machine_matches_nothing(
    endpoint: Endpoint,
) -> None:
    status, answer = await endpoint.post(resolved(target=None))

    assert (status, answer) == (200, {"matched": 0})
