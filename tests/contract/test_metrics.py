"""The real Azure Monitor SDK, through EndpointMetrics, against the HTTPS metrics emulator."""

from __future__ import annotations

import datetime as dt
import ssl
from collections.abc import AsyncIterator, Callable, Iterator

import aiohttp
import pytest

from monitoring.azure_calls import (
    AzureAuthError,
    AzureCallError,
    AzureNotFoundError,
    AzureResponseError,
    RetryPolicy,
    TransientAzureError,
)
from monitoring.health import (
    CheckStatus,
    Decision,
    HealthPolicy,
    HealthState,
    Percentile,
    evaluate,
    next_state,
)
from monitoring.metrics import EndpointMetrics, MetricsOptions, online_endpoint_id
from sandbox.clock import ManualClock
from sandbox.credentials import StaticTokenCredential
from sandbox.metrics_emulator import FaultKind, MetricsEmulator, TrafficPhase

START = dt.datetime(2025, 3, 1, 10, 0, tzinfo=dt.UTC)
ENDPOINT = online_endpoint_id(
    "00000000-1111-2222-3333-444444444444", "rg-mlops", "ws-plant", "churn-prod"
)
METRICS_PATH = "/onlineEndpoints/churn-prod/providers/Microsoft.Insights/metrics"

MetricsFactory = Callable[..., EndpointMetrics]


def at(minute: int) -> dt.datetime:
    return START + dt.timedelta(minutes=minute)


class RecordingSleep:
    """Stands in for asyncio.sleep: remembers the delays, waits for nothing."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
async def emulator(clock: ManualClock) -> AsyncIterator[MetricsEmulator]:
    emu = MetricsEmulator(clock)
    await emu.start()
    # Healthy for five minutes after the deployment, then 20 % errors and slow answers.
    emu.set_traffic(
        ENDPOINT,
        [
            TrafficPhase.healthy(5, requests_per_minute=120, error_percent=0.5, latency_p95_ms=180),
            TrafficPhase.degraded(error_percent=20, latency_p95_ms=2600, requests_per_minute=120),
        ],
    )
    try:
        yield emu
    finally:
        await emu.stop()


@pytest.fixture
def sleep() -> RecordingSleep:
    return RecordingSleep()


@pytest.fixture
def make_metrics(emulator: MetricsEmulator, sleep: RecordingSleep) -> Iterator[MetricsFactory]:
    created: list[EndpointMetrics] = []

    def factory(*, attempts: int = 3, timeout_s: float = 10.0) -> EndpointMetrics:
        options = MetricsOptions(
            retry=RetryPolicy(attempts=attempts, base_delay_s=0.001, timeout_s=timeout_s),
            endpoint=emulator.base_url,
            connection_verify=emulator.ca_path,
        )
        metrics = EndpointMetrics(StaticTokenCredential, options, sleep=sleep)
        created.append(metrics)
        return metrics

    yield factory
    for metrics in created:
        metrics.close()


# --- samples ---------------------------------------------------------------------------


async def test_healthy_sample(
    emulator: MetricsEmulator, clock: ManualClock, make_metrics: MetricsFactory
) -> None:
    clock.advance(10 * 60)
    sample = await make_metrics().sample(ENDPOINT, at(1), at(4))

    assert sample.requests == pytest.approx(360)
    assert sample.errors_5xx == pytest.approx(1.8)
    assert sample.error_rate_percent == pytest.approx(0.5)
    assert sample.latency_ms == pytest.approx(180)
    assert [p.at for p in sample.points] == [at(1), at(2), at(3)]
    assert all(p.requests == pytest.approx(120) for p in sample.points)
    result = evaluate(sample, HealthPolicy())
    assert result.status is CheckStatus.PASSED and not result.low_traffic


async def test_degraded_sample_has_the_error_rate_and_latency(
    emulator: MetricsEmulator, clock: ManualClock, make_metrics: MetricsFactory
) -> None:
    clock.advance(10 * 60)
    sample = await make_metrics().sample(ENDPOINT, at(6), at(8))

    assert sample.requests == pytest.approx(240)
    assert sample.errors_5xx == pytest.approx(48)
    assert sample.error_rate_percent == pytest.approx(20)
    assert sample.latency_ms == pytest.approx(2600)
    result = evaluate(sample, HealthPolicy())
    assert result.status is CheckStatus.FAILED
    assert result.breaches == ("error_rate", "latency")
    assert "20 % > 5 %" in result.reason and "2600 ms > 2000 ms" in result.reason


async def test_the_sdk_sends_the_documented_queries(
    emulator: MetricsEmulator, clock: ManualClock, make_metrics: MetricsFactory
) -> None:
    clock.advance(10 * 60)
    await make_metrics().sample(ENDPOINT, at(1), at(3))

    requests_query, latency_query = emulator.requests
    for logged in (requests_query, latency_query):
        assert logged.path.endswith(METRICS_PATH)
        assert logged.path.startswith("/subscriptions/")  # one slash: the id is not doubled
        assert logged.query["api-version"] == "2024-02-01"
        assert logged.query["interval"] == "PT1M"
        assert logged.query["aggregation"] == "average"
        assert logged.query["timespan"] == "2025-03-01T10:01:00Z/2025-03-01T10:03:00Z"
    assert requests_query.query["metricnames"] == "RequestsPerMinute"
    assert requests_query.query["$filter"] == "statusCodeClass eq '*'"
    # The latency metrics have no status class: filtering on it would be a 400.
    assert latency_query.query["metricnames"] == "RequestLatency_P95"
    assert "$filter" not in latency_query.query


async def test_configured_percentile_and_deployment(
    emulator: MetricsEmulator, clock: ManualClock, make_metrics: MetricsFactory
) -> None:
    clock.advance(10 * 60)
    sample = await make_metrics().sample(ENDPOINT, at(6), at(7), Percentile.P99, deployment="blue")

    assert sample.percentile is Percentile.P99
    assert sample.latency_ms == pytest.approx(2600 * 1.4)
    requests_query, latency_query = emulator.requests
    assert requests_query.query["$filter"] == "deployment eq 'blue' and statusCodeClass eq '*'"
    assert latency_query.query["metricnames"] == "RequestLatency_P99"
    assert latency_query.query["$filter"] == "deployment eq 'blue'"


async def test_another_deployment_has_no_traffic(
    emulator: MetricsEmulator, clock: ManualClock, make_metrics: MetricsFactory
) -> None:
    clock.advance(10 * 60)
    sample = await make_metrics().sample(ENDPOINT, at(6), at(8), deployment="green")

    assert sample.requests == 0 and sample.latency_ms is None and sample.points == ()


async def test_latency_is_weighted_by_traffic_across_phases(
    emulator: MetricsEmulator, clock: ManualClock, make_metrics: MetricsFactory
) -> None:
    clock.advance(10 * 60)
    sample = await make_metrics().sample(ENDPOINT, at(4), at(6))  # one healthy, one degraded

    assert [p.latency_ms for p in sample.points] == pytest.approx([180, 2600])
    assert sample.latency_ms == pytest.approx((180 + 2600) / 2)
    assert sample.errors_5xx == pytest.approx(0.6 + 24)


async def test_minutes_not_over_yet_are_not_reported(
    emulator: MetricsEmulator, clock: ManualClock, make_metrics: MetricsFactory
) -> None:
    clock.advance(2 * 60 + 30)  # 10:02:30
    sample = await make_metrics().sample(ENDPOINT, at(0), at(5))

    assert [p.at for p in sample.points] == [at(0), at(1)]


async def test_no_traffic_before_the_deployment_is_low_traffic(
    emulator: MetricsEmulator, clock: ManualClock, make_metrics: MetricsFactory
) -> None:
    clock.advance(10 * 60)
    sample = await make_metrics().sample(ENDPOINT, at(-5), at(0))

    assert sample.requests == 0 and sample.latency_ms is None
    assert sample.error_rate_percent is None
    result = evaluate(sample, HealthPolicy())
    assert result.status is CheckStatus.PASSED and result.low_traffic


async def test_a_watch_on_the_emulator_rolls_back_on_the_third_degraded_check(
    emulator: MetricsEmulator, clock: ManualClock, make_metrics: MetricsFactory
) -> None:
    policy = HealthPolicy()
    metrics = make_metrics()
    state = HealthState(started_at=clock.now(), policy=policy)
    decisions = []
    for _ in range(12):
        clock.advance(60)
        start, end = policy.check_span(clock.now())
        try:
            result = evaluate(await metrics.sample(ENDPOINT, start, end), policy)
        except AzureCallError as exc:
            result = evaluate(None, policy, at=end, error=exc.message)
        state, decision = next_state(state, result)
        decisions.append(decision)
        if decision not in (Decision.KEEP_WATCHING, Decision.IGNORED):
            break

    # Degraded from minute 5; a check at minute m measures minute m-3 (2 min delay).
    # The first two checks measure minutes before the deployment and are ignored.
    assert decisions[:2] == [Decision.IGNORED, Decision.IGNORED]
    assert decisions[-1] is Decision.ROLLBACK
    assert len(decisions) == 10
    assert [r.at for r in state.failure_streak] == [at(6), at(7), at(8)]


# --- errors ----------------------------------------------------------------------------


async def test_server_errors_are_retried_then_typed(
    emulator: MetricsEmulator,
    clock: ManualClock,
    make_metrics: MetricsFactory,
    sleep: RecordingSleep,
) -> None:
    clock.advance(10 * 60)
    emulator.inject(FaultKind.SERVER_ERROR, count=10)
    with pytest.raises(TransientAzureError) as caught:
        await make_metrics(attempts=2).sample(ENDPOINT, at(1), at(2))

    assert caught.value.service == "Azure Monitor"
    assert "HTTP 500" in caught.value.message
    assert len(sleep.delays) == 1  # two attempts, one pause, no sleeping for real
    result = evaluate(None, HealthPolicy(), at=at(2), error=caught.value.message)
    assert result.status is CheckStatus.INCONCLUSIVE
    assert "HTTP 500" in result.reason


async def test_a_transient_failure_recovers_within_the_retry_policy(
    emulator: MetricsEmulator,
    clock: ManualClock,
    make_metrics: MetricsFactory,
    sleep: RecordingSleep,
) -> None:
    clock.advance(10 * 60)
    emulator.inject(FaultKind.THROTTLE, retry_after_s=7)
    sample = await make_metrics().sample(ENDPOINT, at(1), at(2))

    assert sample.requests == pytest.approx(120)
    assert sleep.delays == [7]  # Retry-After wins over the backoff


async def test_malformed_answer_is_a_response_error(
    emulator: MetricsEmulator, clock: ManualClock, make_metrics: MetricsFactory
) -> None:
    clock.advance(10 * 60)
    emulator.inject(FaultKind.MALFORMED)
    with pytest.raises(AzureResponseError):
        await make_metrics().sample(ENDPOINT, at(1), at(2))


async def test_forbidden_names_the_role_to_grant(
    emulator: MetricsEmulator, clock: ManualClock, make_metrics: MetricsFactory
) -> None:
    emulator.inject(FaultKind.FORBIDDEN)
    with pytest.raises(AzureAuthError) as caught:
        await make_metrics().sample(ENDPOINT, at(1), at(2))
    assert "Monitoring Reader" in str(caught.value)


async def test_unknown_endpoint_is_not_found(
    emulator: MetricsEmulator, clock: ManualClock, make_metrics: MetricsFactory
) -> None:
    other = online_endpoint_id("00000000-1111-2222-3333-444444444444", "rg", "ws", "gone")
    with pytest.raises(AzureNotFoundError):
        await make_metrics().sample(other, at(1), at(2))


async def test_slow_answer_times_out_as_transient(
    emulator: MetricsEmulator, clock: ManualClock, make_metrics: MetricsFactory
) -> None:
    emulator.inject(FaultKind.SLOW, delay_s=5)
    with pytest.raises(TransientAzureError):
        await make_metrics(attempts=1, timeout_s=0.3).sample(ENDPOINT, at(1), at(2))


# --- the emulator keeps clients honest -------------------------------------------------


async def test_emulator_refuses_what_azure_refuses(emulator: MetricsEmulator) -> None:
    context = ssl.create_default_context(cafile=emulator.ca_path)
    url = f"{emulator.base_url}{ENDPOINT}/providers/Microsoft.Insights/metrics"
    base = {"api-version": "2024-02-01", "interval": "PT1M", "aggregation": "average"}
    headers = {"Authorization": "Bearer x"}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as session:
        latency_by_class = {
            **base,
            "metricnames": "RequestLatency_P95",
            "$filter": "statusCodeClass eq '*'",
        }
        async with session.get(url, params=latency_by_class, headers=headers) as response:
            assert response.status == 400
            assert "dimension" in (await response.json())["error"]["message"]
        unknown = {**base, "metricnames": "ErrorRate"}
        async with session.get(url, params=unknown, headers=headers) as response:
            assert response.status == 400
        async with session.get(
            url, params={**base, "metricnames": "RequestsPerMinute"}
        ) as response:
            assert response.status == 401  # no bearer token
