"""Azure Monitor metrics of an online endpoint, in the shape and words Microsoft publishes.

Sources:
- Azure/azure-rest-api-specs `specification/monitor/resource-manager/Microsoft.Insights/
  stable/2024-02-01/examples/GetMetric.json` at f7b84a5c89d94559d2e2125aa706c1463ddddcc3
  -> examples/monitor_get_metric_2024-02-01.json (trimmed: of `BlobCount`'s five series
  only the first, tier `Hot`, is kept, and the second metric, `BlobCapacity`, is left out);
- MicrosoftDocs/azure-reference-other `azure-monitor-ref/supported-metrics/includes/
  microsoft-machinelearningservices-workspaces-onlineendpoints-metrics-include.md` at
  3c3654dfff0306a97830d00412e73f0b94bf46f1 -> examples/monitor_onlineendpoints_supported_metrics.md
  (the metrics Azure Monitor publishes for `Microsoft.MachineLearningServices/workspaces/
  onlineEndpoints`, with their names, units and dimensions).

No published response is about an online endpoint: the answer served to the SDK here is
the published GetMetric answer, field for field, with the online endpoint's metric,
description, unit and status-class dimension put where the storage metric's were (Azure
answers with dimension names lower-cased, as the example's `tier` is).
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from monitoring.azure_calls import RetryPolicy
from monitoring.health import Percentile
from monitoring.metrics import EndpointMetrics, MetricsOptions, online_endpoint_id
from sandbox.clock import ManualClock
from sandbox.credentials import StaticTokenCredential
from sandbox.metrics_emulator import METRICS, MetricsEmulator, TrafficPhase

EXAMPLES = Path(__file__).parent / "examples"
UTC = dt.UTC
ENDPOINT = online_endpoint_id(
    "00000000-1111-2222-3333-444444444444", "rg-mlops", "ws-plant", "churn-prod"
)
START = dt.datetime(2021, 4, 20, 9, 0, tzinfo=UTC)


def _published_answer() -> dict[str, Any]:
    body = json.loads((EXAMPLES / "monitor_get_metric_2024-02-01.json").read_text())
    answer = body["responses"]["200"]["body"]
    assert isinstance(answer, dict)
    return answer


def _reference() -> dict[str, dict[str, Any]]:
    """Each documented metric's display name, unit and dimensions, from the table."""
    table = (EXAMPLES / "monitor_onlineendpoints_supported_metrics.md").read_text()
    rows: dict[str, dict[str, Any]] = {}
    for line in table.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 8 or not cells[2].startswith("`"):
            continue
        display, _, description = cells[1].partition("<p><p>")
        rows[cells[2].strip("`")] = {
            "display_name": display.strip("*"),
            "description": description.strip(),
            "unit": cells[3],
            "dimensions": tuple(re.findall(r"`([^`]+)`", cells[5])),
        }
    return rows


def test_the_emulated_metrics_are_the_documented_ones() -> None:
    reference = _reference()
    assert "RequestsPerMinute" in reference and "RequestLatency_P99" in reference
    for name, metric in METRICS.items():
        documented = reference[name]
        assert metric.display_name == documented["display_name"], name
        assert metric.description == documented["description"], name
        assert metric.unit == documented["unit"], name
        assert metric.dimensions == documented["dimensions"], name


def _online_endpoint_answer(per_class: dict[str, list[float]]) -> dict[str, Any]:
    """The published answer about `RequestsPerMinute` split by status class."""
    answer = copy.deepcopy(_published_answer())
    (metric,) = answer["value"]
    (series,) = metric["timeseries"]
    documented = METRICS["RequestsPerMinute"]
    metric["id"] = f"{ENDPOINT}/providers/Microsoft.Insights/metrics/RequestsPerMinute"
    metric["name"] = {"value": "RequestsPerMinute", "localizedValue": documented.display_name}
    metric["displayDescription"] = documented.description
    metric["unit"] = documented.unit
    answer["namespace"] = "microsoft.machinelearningservices/workspaces/onlineendpoints"
    answer["interval"] = "PT1M"
    split = []
    for status_class, figures in per_class.items():
        one = copy.deepcopy(series)
        dimension = one["metadatavalues"][0]
        dimension["name"] = {"value": "statuscodeclass", "localizedValue": "statuscodeclass"}
        dimension["value"] = status_class
        for minute, (point, figure) in enumerate(zip(one["data"], figures, strict=True)):
            at = START + dt.timedelta(minutes=minute)
            point.update(
                timeStamp=at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                average=figure,
                minimum=figure,
                maximum=figure,
            )
        split.append(one)
    metric["timeseries"] = split
    return answer


@pytest.fixture
async def emulator() -> AsyncIterator[MetricsEmulator]:
    emu = MetricsEmulator(ManualClock(START + dt.timedelta(hours=1)))
    await emu.start()
    try:
        yield emu
    finally:
        await emu.stop()


def _metrics(emulator: MetricsEmulator) -> EndpointMetrics:
    options = MetricsOptions(
        retry=RetryPolicy(attempts=1, base_delay_s=0.001, timeout_s=10.0),
        endpoint=emulator.base_url,
        connection_verify=emulator.ca_path,
    )
    return EndpointMetrics(StaticTokenCredential, options)


async def test_a_published_shape_answer_through_the_monitor_sdk(emulator: MetricsEmulator) -> None:
    emulator.answer_with(
        "RequestsPerMinute",
        _online_endpoint_answer(
            {
                "2xx": [110.0, 112.0, 90.0, 60.0, 100.0],
                "4xx": [2.0, 0.0, 1.0, 0.0, 0.0],
                "5xx": [0.0, 0.0, 9.0, 40.0, 0.0],
            }
        ),
    )
    emulator.set_traffic(ENDPOINT, [TrafficPhase.healthy(None, latency_p95_ms=240)], start=START)
    metrics = _metrics(emulator)
    try:
        sample = await metrics.sample(
            ENDPOINT, START, START + dt.timedelta(minutes=5), Percentile.P95
        )
    finally:
        metrics.close()

    assert sample.requests == pytest.approx(524.0)
    assert sample.errors_5xx == pytest.approx(49.0)
    assert sample.error_rate_percent == pytest.approx(49.0 / 524.0 * 100)
    minutes = [point.at for point in sample.points]
    assert minutes == [START + dt.timedelta(minutes=m) for m in range(5)]
    assert [point.errors_5xx for point in sample.points] == [0.0, 0.0, 9.0, 40.0, 0.0]
    assert sample.latency_ms == pytest.approx(240.0)
    (requests_query,) = emulator.metric_queries("RequestsPerMinute")
    assert requests_query.query["$filter"] == "statusCodeClass eq '*'"
    assert requests_query.query["interval"] == "PT1M"
    assert requests_query.query["aggregation"] == "average"


def _keys(value: Any, path: str = "") -> set[str]:
    """Every key path of a JSON answer, lists read through their first item."""
    found: set[str] = set()
    if isinstance(value, dict):
        for key, item in value.items():
            found.add(f"{path}/{key}")
            found |= _keys(item, f"{path}/{key}")
    elif isinstance(value, list) and value:
        found |= _keys(value[0], f"{path}[]")
    return found


async def test_the_emulator_answers_in_the_published_shape(emulator: MetricsEmulator) -> None:
    import aiohttp

    emulator.set_traffic(ENDPOINT, [TrafficPhase.healthy(None)], start=START)
    params = {
        "api-version": "2024-02-01",
        "metricnames": "RequestsPerMinute",
        "timespan": "2021-04-20T09:00:00Z/2021-04-20T09:05:00Z",
        "interval": "PT1M",
        "aggregation": "average",
        "$filter": "statusCodeClass eq '*'",
    }
    url = f"{emulator.base_url}{ENDPOINT}/providers/Microsoft.Insights/metrics"
    async with (
        aiohttp.ClientSession(headers={"Authorization": "Bearer token"}) as http,
        http.get(url, params=params, ssl=_ssl(emulator)) as answer,
    ):
        assert answer.status == 200
        emulated = await answer.json()

    published = _published_answer()
    # Every field the emulator writes is one the published answer has, and back; the
    # published points carry minimum and maximum too, as they were asked for.
    assert _keys(emulated) == _keys(published) - {
        "/value[]/timeseries[]/data[]/minimum",
        "/value[]/timeseries[]/data[]/maximum",
    }
    assert emulated["namespace"] == emulated["namespace"].lower()
    metric = emulated["value"][0]
    assert metric["name"]["localizedValue"] == "Requests Per Minute"
    dimension = metric["timeseries"][0]["metadatavalues"][0]["name"]
    assert dimension == {"value": "statuscodeclass", "localizedValue": "statuscodeclass"}


def _ssl(emulator: MetricsEmulator) -> Any:
    import ssl

    return ssl.create_default_context(cafile=emulator.ca_path)
