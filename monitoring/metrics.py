"""Azure Monitor metrics of Azure ML online endpoints: requests by status class and latency.

Azure Monitor has no error-rate metric for online endpoints, so a sample is two queries of
the resource-centric metrics REST (`GET {resource_id}/providers/Microsoft.Insights/metrics`):
`RequestsPerMinute` split by `statusCodeClass` (5xx over all is the error rate), and
`RequestLatency_P<n>` (which does not have that dimension, so it cannot share the query).

The SDK is `azure-mgmt-monitor`'s `MonitorManagementClient.metrics.list`: since
azure-monitor-query 2.0 there is no `MetricsQueryClient`, and Microsoft points its users
to this management client, which sends the same request. It is synchronous, so calls run
in a worker thread through `call_blocking`, with the SDK's own retries off so that
`RetryPolicy` alone decides. It is imported lazily (its models are large).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

from monitoring.azure_calls import (
    AzureCallError,
    AzureResponseError,
    RetryPolicy,
    cached_client,
    call_blocking,
)
from monitoring.azure_core_errors import classify_azure_core
from monitoring.health import MetricPoint, MetricsSample, Percentile

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

SERVICE = "Azure Monitor"
REQUESTS_METRIC = "RequestsPerMinute"
STATUS_CLASS_DIMENSION = "statusCodeClass"
DEPLOYMENT_DIMENSION = "deployment"
SERVER_ERROR_CLASS = "5xx"
# Both metrics are per-minute values; "average" is their documented aggregation, and over
# a one-minute grain it is that minute's figure.
AGGREGATION = "average"
GRAIN = "PT1M"
CREDENTIAL_SETTINGS = "AZURE_TENANT_ID / AZURE_CLIENT_ID / AZURE_CLIENT_SECRET or managed identity"
SCOPE_SETTINGS = "the identity's Monitoring Reader role on the online endpoint"
_PROVIDER = "Microsoft.MachineLearningServices"


def online_endpoint_id(
    subscription_id: str, resource_group: str, workspace: str, endpoint: str
) -> str:
    """The ARM id of an Azure ML online endpoint, which is what its metrics hang off."""
    return (
        f"/subscriptions/{subscription_id}/resourceGroups/{resource_group}/providers/"
        f"{_PROVIDER}/workspaces/{workspace}/onlineEndpoints/{endpoint}"
    )


def subscription_of(resource_id: str) -> str:
    """The subscription in an ARM id; the management client is built per subscription."""
    parts = [p for p in resource_id.split("/") if p]
    if len(parts) >= 2 and parts[0].lower() == "subscriptions":
        return parts[1]
    raise AzureCallError(SERVICE, "query metrics", f"not an Azure resource id: {resource_id!r}")


@dataclass(frozen=True, slots=True)
class MetricsOptions:
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    # Resource Manager base URL; None is public Azure. A sovereign cloud or an emulator.
    endpoint: str | None = None
    # Token audience for that cloud (e.g. "https://management.usgovcloudapi.net"); None
    # keeps the SDK's default for the active cloud.
    audience: str | None = None
    connection_verify: str | None = None  # CA bundle path; None trusts the system store
    connect_timeout_s: float = 10.0


# --- pure mapping ----------------------------------------------------------------------


def _name(localizable: Any) -> str:
    value = getattr(localizable, "value", None)
    return str(value) if value is not None else ""


def _minute(value: Any) -> dt.datetime | None:
    if not isinstance(value, dt.datetime):
        return None
    aware = value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
    return aware.astimezone(dt.UTC)


def _figure(point: Any) -> float | None:
    """A point's value: "average" was asked for; "total" is accepted as a fallback."""
    for attribute in ("average", "total"):
        value = getattr(point, attribute, None)
        if value is not None:
            return float(value)
    return None


def _metric(response: Any, name: str) -> Any:
    for metric in getattr(response, "value", None) or []:
        if _name(getattr(metric, "name", None)).lower() == name.lower():
            code = getattr(metric, "error_code", None)
            if code and str(code).lower() != "success":
                message = getattr(metric, "error_message", None) or code
                raise AzureResponseError(SERVICE, "query metrics", f"{name}: {message}")
            return metric
    return None


def _dimension(series: Any, dimension: str) -> str | None:
    # Azure answers with dimension names lower-cased ("statuscodeclass").
    for entry in getattr(series, "metadatavalues", None) or []:
        if _name(getattr(entry, "name", None)).lower() == dimension.lower():
            value = getattr(entry, "value", None)
            return str(value) if value is not None else None
    return None


def sample_from_metrics(
    requests_response: Any,
    latency_response: Any,
    *,
    start: dt.datetime,
    end: dt.datetime,
    percentile: Percentile,
) -> MetricsSample:
    """Combine the two metrics answers (SDK `Response` models) into one sample.

    Minutes without a figure count as no requests. The sample's latency weights each
    minute's percentile by that minute's traffic: percentiles cannot be recombined
    exactly, and a quiet minute's outlier should not outweigh a busy one.
    """
    requests: dict[dt.datetime, float] = {}
    errors: dict[dt.datetime, float] = {}
    latency: dict[dt.datetime, float] = {}
    request_metric = _metric(requests_response, REQUESTS_METRIC)
    for series in getattr(request_metric, "timeseries", None) or []:
        status_class = (_dimension(series, STATUS_CLASS_DIMENSION) or "").lower()
        for point in getattr(series, "data", None) or []:
            minute, value = _minute(getattr(point, "time_stamp", None)), _figure(point)
            if minute is None or value is None:
                continue
            requests[minute] = requests.get(minute, 0.0) + value
            if status_class == SERVER_ERROR_CLASS:
                errors[minute] = errors.get(minute, 0.0) + value
    latency_metric = _metric(latency_response, percentile.metric_name)
    for series in getattr(latency_metric, "timeseries", None) or []:
        for point in getattr(series, "data", None) or []:
            minute, value = _minute(getattr(point, "time_stamp", None)), _figure(point)
            if minute is not None and value is not None:
                # One series without a dimension filter; max() if an answer splits anyway.
                latency[minute] = max(value, latency.get(minute, value))

    points = tuple(
        MetricPoint(minute, requests.get(minute, 0.0), errors.get(minute, 0.0), latency.get(minute))
        for minute in sorted(set(requests) | set(latency))
    )
    total = sum(p.requests for p in points)
    weighted = [(p.latency_ms, p.requests) for p in points if p.latency_ms is not None]
    weight = sum(w for _, w in weighted)
    if not weighted:
        combined: float | None = None
    elif weight > 0:
        combined = sum(v * w for v, w in weighted) / weight
    else:
        combined = sum(v for v, _ in weighted) / len(weighted)
    return MetricsSample(
        start=start,
        end=end,
        requests=total,
        errors_5xx=sum(p.errors_5xx for p in points),
        latency_ms=combined,
        percentile=percentile,
        points=points,
    )


def timespan(start: dt.datetime, end: dt.datetime) -> str:
    """ISO-8601 interval in UTC, as the metrics API's `timespan` expects."""

    def iso(moment: dt.datetime) -> str:
        aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)
        return aware.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    return f"{iso(start)}/{iso(end)}"


def _dimension_filter(conditions: Iterable[tuple[str, str]]) -> str | None:
    text = " and ".join(f"{name} eq '{value}'" for name, value in conditions)
    return text or None


# --- errors ----------------------------------------------------------------------------


def classify(
    exc: BaseException, *, operation: str = "query metrics", subject: str = ""
) -> AzureCallError:
    """Turn an azure-core / azure-mgmt-monitor exception into one of mlbot's typed errors."""
    return classify_azure_core(
        exc,
        service=SERVICE,
        operation=operation,
        subject=subject,
        credential_settings=CREDENTIAL_SETTINGS,
        forbidden_hint=SCOPE_SETTINGS,
        refused_401_is_auth=False,
        retry_after_ms=False,
    )


# --- the adapter -----------------------------------------------------------------------


class EndpointMetrics:
    """Samples the traffic of Azure ML online endpoints from Azure Monitor."""

    def __init__(
        self,
        credential_factory: Callable[[], TokenCredential],
        options: MetricsOptions | None = None,
        *,
        executor: Executor | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self._credential_factory = credential_factory
        self.options = options or MetricsOptions()
        # Azure Monitor's own pool (monitoring/executors.py); None is asyncio's default.
        self._executor = executor
        self._sleep = sleep
        self._rng = rng
        self._credential: TokenCredential | None = None
        self._clients: dict[str, Any] = {}  # by subscription id
        self._lock = asyncio.Lock()

    async def sample(
        self,
        resource_id: str,
        start: dt.datetime,
        end: dt.datetime,
        percentile: Percentile = Percentile.P95,
        *,
        deployment: str | None = None,
    ) -> MetricsSample:
        """Requests, 5xx and latency of one endpoint over [start, end), minute by minute.

        `deployment` narrows to one deployment behind the endpoint (blue/green traffic).
        Raises a typed `AzureCallError`; the health watch counts that as inconclusive.
        """
        client = await self._client(subscription_of(resource_id))
        uri = resource_id.strip("/")  # the SDK puts its own "/" in front
        span = timespan(start, end)
        scope = [(DEPLOYMENT_DIMENSION, deployment)] if deployment else []

        def query() -> MetricsSample:
            requests = client.metrics.list(
                uri,
                timespan=span,
                interval=GRAIN,
                metricnames=REQUESTS_METRIC,
                aggregation=AGGREGATION,
                filter=_dimension_filter([*scope, (STATUS_CLASS_DIMENSION, "*")]),
            )
            latency = client.metrics.list(
                uri,
                timespan=span,
                interval=GRAIN,
                metricnames=percentile.metric_name,
                aggregation=AGGREGATION,
                filter=_dimension_filter(scope),
            )
            return sample_from_metrics(
                requests, latency, start=start, end=end, percentile=percentile
            )

        return await self._call(query, "query metrics", f"for {resource_id}")

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()

    async def _call(self, fn: Callable[[], Any], operation: str, subject: str) -> Any:
        return await call_blocking(
            fn,
            service=SERVICE,
            operation=operation,
            classify=partial(classify, operation=operation, subject=subject),
            policy=self.options.retry,
            executor=self._executor,
            sleep=self._sleep,
            rng=self._rng,
        )

    async def _client(self, subscription_id: str) -> Any:
        return await cached_client(
            self._clients,
            subscription_id,
            self._lock,
            partial(
                self._call,
                partial(self._create_client, subscription_id),
                "connect",
                f"subscription {subscription_id}",
            ),
        )

    def _create_client(self, subscription_id: str) -> Any:
        from azure.mgmt.monitor import MonitorManagementClient  # lazy: large models module

        if self._credential is None:
            self._credential = self._credential_factory()
        options = self.options
        kwargs: dict[str, Any] = {
            # Retries belong to RetryPolicy; the SDK's own loop would outlast our timeout.
            "retry_total": 0,
            "connection_timeout": min(options.connect_timeout_s, options.retry.timeout_s),
            "read_timeout": options.retry.timeout_s,
        }
        if options.endpoint is not None:
            kwargs["base_url"] = options.endpoint.rstrip("/")
        if options.audience is not None:
            kwargs["credential_scopes"] = [options.audience.rstrip("/") + "/.default"]
        if options.connection_verify is not None:
            kwargs["connection_verify"] = options.connection_verify
        return MonitorManagementClient(self._credential, subscription_id, **kwargs)
