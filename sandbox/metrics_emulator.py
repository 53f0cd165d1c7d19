"""A local stand-in for the Azure Monitor metrics REST of Azure ML online endpoints.

It answers `GET {resource_id}/providers/Microsoft.Insights/metrics` the way Azure does
for `RequestsPerMinute` (split or filtered by `statusCodeClass` / `deployment`) and
`RequestLatency_P50|P90|P95|P99`, with the same JSON (`value[].name.value`,
`timeseries[].metadatavalues[]`, `timeseries[].data[].timeStamp/average`). Each endpoint
plays a list of traffic phases - e.g. healthy for five minutes, then 20 % errors - on an
injected clock, so a sandbox scenario can degrade a deployment and a test can jump to
minute 7 without sleeping. Tests queue faults and read the request log, or have a metric
answered with a recorded body (`answer_with`). All state lives in one `MetricsEmulator`,
so several can run in one process.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from sandbox.clock import SandboxClock
from sandbox.faults import FaultKind, FaultQueue, LoggedRequest, arm_error
from sandbox.https_site import HttpsSite
from sandbox.tls import TlsMaterial

API_VERSIONS = ("2018-01-01", "2019-07-01", "2021-05-01", "2023-10-01", "2024-02-01")
NAMESPACE = "Microsoft.MachineLearningServices/workspaces/onlineEndpoints"
_MINUTE = dt.timedelta(minutes=1)
_MAX_POINTS = 24 * 60  # refuse absurd spans rather than build huge answers

# Dimensions Azure publishes per metric; filtering on any other is a 400, as in Azure
# (the latency metrics have no status class, which is why clients query them apart).
_REQUEST_DIMENSIONS = ("deployment", "statusCode", "statusCodeClass", "modelStatusCode")
_LATENCY_DIMENSIONS = ("deployment",)


@dataclass(frozen=True, slots=True)
class PublishedMetric:
    """A metric as Azure Monitor's supported-metrics reference lists it."""

    display_name: str  # the answer's `name.localizedValue`
    description: str  # the answer's `displayDescription`
    unit: str
    dimensions: tuple[str, ...]


_LATENCY_TEXT = (
    "The average {p} request latency aggregated by all request latency values collected "
    "over the selected time period"
)
# The online-endpoint metrics the emulator serves, in the reference's words.
METRICS: dict[str, PublishedMetric] = {
    "RequestsPerMinute": PublishedMetric(
        "Requests Per Minute",
        "The number of requests sent to online endpoint within a minute",
        "Count",
        _REQUEST_DIMENSIONS,
    ),
    **{
        f"RequestLatency_{p}": PublishedMetric(
            f"Request Latency {p}",
            _LATENCY_TEXT.format(p=p),
            "Milliseconds",
            _LATENCY_DIMENSIONS,
        )
        for p in ("P50", "P90", "P95", "P99")
    },
}
# How the other percentiles relate to the P95 a phase states.
_PERCENTILE_FACTORS = {"P50": 0.5, "P90": 0.85, "P95": 1.0, "P99": 1.4}
_FILTER_TERM = re.compile(r"^\s*(\w+)\s+eq\s+'([^']*)'\s*$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class TrafficPhase:
    """Steady traffic for `minutes` (None: until the end of time)."""

    minutes: float | None
    requests_per_minute: float = 120.0
    error_percent: float = 0.5  # share of 5xx answers
    latency_p95_ms: float = 180.0
    client_error_percent: float = 1.0  # share of 4xx answers: not the deployment's fault

    def __post_init__(self) -> None:
        if self.minutes is not None and self.minutes <= 0:
            raise ValueError("a phase lasts a positive number of minutes")
        if self.requests_per_minute < 0 or self.latency_p95_ms < 0:
            raise ValueError("traffic and latency cannot be negative")
        if not 0 <= self.error_percent + self.client_error_percent <= 100:
            raise ValueError("error shares must add up to at most 100 %")

    @classmethod
    def healthy(cls, minutes: float | None = None, **changes: float) -> TrafficPhase:
        return cls(minutes, **changes)

    @classmethod
    def degraded(
        cls,
        minutes: float | None = None,
        *,
        error_percent: float = 20.0,
        latency_p95_ms: float = 2600.0,
        requests_per_minute: float = 120.0,
    ) -> TrafficPhase:
        return cls(
            minutes,
            requests_per_minute=requests_per_minute,
            error_percent=error_percent,
            latency_p95_ms=latency_p95_ms,
        )

    def by_class(self) -> dict[str, float]:
        """Requests per minute for each status code class."""
        errors = self.requests_per_minute * self.error_percent / 100
        client = self.requests_per_minute * self.client_error_percent / 100
        return {"2xx": self.requests_per_minute - errors - client, "4xx": client, "5xx": errors}


@dataclass(slots=True)
class EndpointTraffic:
    """One online endpoint's scripted traffic, from `start` on."""

    resource_id: str
    start: dt.datetime
    phases: list[TrafficPhase]
    deployment: str = "blue"

    def phase_at(self, moment: dt.datetime) -> TrafficPhase | None:
        """The phase in force at `moment`; None before the start or after the last phase."""
        if moment < self.start:
            return None
        offset = self.start
        for phase in self.phases:
            if phase.minutes is None:
                return phase
            offset += dt.timedelta(minutes=phase.minutes)
            if moment < offset:
                return phase
        return None


def _key(resource_id: str) -> str:
    # ARM ids are case-insensitive.
    return "/" + resource_id.strip("/").lower()


def _floor_minute(moment: dt.datetime) -> dt.datetime:
    return moment.replace(second=0, microsecond=0)


def _parse_moment(text: str) -> dt.datetime:
    moment = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _service_time(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class _BadRequest(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class MetricsEmulator:
    """Scripted endpoint metrics behind an HTTPS aiohttp server on 127.0.0.1."""

    def __init__(
        self, clock: SandboxClock, *, tls: TlsMaterial | None = None, region: str = "westeurope"
    ) -> None:
        self.clock = clock
        self.region = region
        self.endpoints: dict[str, EndpointTraffic] = {}  # by lower-cased resource id
        self.requests: list[LoggedRequest] = []
        # Recorded answers (a published example) by lower-cased metric name: served as given.
        self.recorded: dict[str, dict[str, Any]] = {}
        self._faults = FaultQueue("Microsoft.Insights/metrics/read")
        self._site = HttpsSite(self.app, tls, name="the emulator")

    # --- lifecycle ---------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return self._site.base_url

    @property
    def ca_path(self) -> str:
        return self._site.ca_path

    def app(self) -> web.Application:
        app = web.Application()
        self.add_routes(app)
        return app

    def add_routes(self, app: web.Application) -> None:
        """The emulator's Resource Manager routes, on any application (one ARM front)."""
        app.router.add_get("/{resource:.+}/providers/Microsoft.Insights/metrics", self._metrics)
        app.router.add_get("/{resource:.+}/providers/microsoft.insights/metrics", self._metrics)

    async def start(self) -> str:
        """Serve on an ephemeral port of 127.0.0.1; return the base URL."""
        self._faults.open()
        return await self._site.start()

    async def stop(self) -> None:
        self._faults.close()  # releases answers held back by SLOW faults
        await self._site.stop()

    # --- state -------------------------------------------------------------------------

    def set_traffic(
        self,
        resource_id: str,
        phases: Iterable[TrafficPhase],
        *,
        start: dt.datetime | None = None,
        deployment: str = "blue",
    ) -> EndpointTraffic:
        """Script an endpoint's traffic from `start` (default: the clock's now) on."""
        traffic = EndpointTraffic(
            resource_id=resource_id,
            start=start or self.clock.now(),
            phases=list(phases),
            deployment=deployment,
        )
        self.endpoints[_key(resource_id)] = traffic
        return traffic

    def answer_with(self, metric: str, body: dict[str, Any]) -> None:
        """Answer every query of `metric` alone with `body`, whatever the resource."""
        self.recorded[metric.lower()] = copy.deepcopy(body)

    def snapshot(self) -> list[dict[str, Any]]:
        """Plain data of every endpoint and its phase now, for inspection endpoints."""
        now = self.clock.now()
        shown = []
        for traffic in self.endpoints.values():
            phase = traffic.phase_at(now)
            shown.append(
                {
                    "resource_id": traffic.resource_id,
                    "deployment": traffic.deployment,
                    "start": traffic.start.isoformat(),
                    "now": None
                    if phase is None
                    else {
                        "requests_per_minute": phase.requests_per_minute,
                        "error_percent": phase.error_percent,
                        "latency_p95_ms": phase.latency_p95_ms,
                    },
                }
            )
        return shown

    # --- faults and inspection ---------------------------------------------------------

    def inject(self, kind: FaultKind | str, count: int = 1, **params: float) -> None:
        """Answer the next `count` requests with a fault (`retry_after_s`, `delay_s`)."""
        self._faults.inject(kind, count, **params)

    def clear_faults(self) -> None:
        self._faults.clear()

    def metric_queries(self, metric: str | None = None) -> list[LoggedRequest]:
        return [
            r
            for r in self.requests
            if metric is None or r.query.get("metricnames", "").lower() == metric.lower()
        ]

    # --- the metrics themselves --------------------------------------------------------

    def _minutes(self, start: dt.datetime, end: dt.datetime) -> Iterator[dt.datetime]:
        """Whole minutes in [start, end) that are over by now: Azure reports a minute once
        it has passed, never one still running or in the future."""
        minute = _floor_minute(start)
        if minute < start:
            minute += _MINUTE
        now = self.clock.now()
        while minute < end and minute + _MINUTE <= now:
            yield minute
            minute += _MINUTE

    def _series(
        self,
        metric: str,
        traffic: EndpointTraffic,
        minutes: list[dt.datetime],
        filters: dict[str, str],
    ) -> list[dict[str, Any]]:
        wanted_deployment = filters.get("deployment", "*")
        if wanted_deployment != "*" and wanted_deployment.lower() != traffic.deployment.lower():
            return []
        phases = [(minute, traffic.phase_at(minute)) for minute in minutes]
        split: list[tuple[str, str]] = []  # (dimension, value) that label each series
        if "deployment" in filters:
            split.append(("deployment", traffic.deployment))
        if metric == "RequestsPerMinute":
            wanted_class = filters.get("statusCodeClass")
            classes = ["2xx", "4xx", "5xx"] if wanted_class in (None, "*") else [wanted_class]
            labelled = wanted_class is not None
            series = []
            for status_class in classes:
                data = [
                    {"timeStamp": _service_time(m), "average": p.by_class().get(status_class, 0.0)}
                    if p is not None and p.requests_per_minute > 0
                    else {"timeStamp": _service_time(m)}
                    for m, p in phases
                ]
                # Azure leaves out split series that carried nothing in the whole span.
                if labelled and not any(d.get("average") for d in data):
                    continue
                labels = [*split, *([("statusCodeClass", status_class)] if labelled else [])]
                series.append(self._one_series(labels, data))
            if not labelled and series:
                # Unsplit: one series of all requests.
                data = [
                    {"timeStamp": _service_time(m), "average": p.requests_per_minute}
                    if p is not None and p.requests_per_minute > 0
                    else {"timeStamp": _service_time(m)}
                    for m, p in phases
                ]
                series = [self._one_series(split, data)]
            return series
        factor = _PERCENTILE_FACTORS[metric.removeprefix("RequestLatency_")]
        data = [
            {"timeStamp": _service_time(m), "average": p.latency_p95_ms * factor}
            if p is not None and p.requests_per_minute > 0
            else {"timeStamp": _service_time(m)}
            for m, p in phases
        ]
        return [self._one_series(split, data)]

    @staticmethod
    def _one_series(labels: list[tuple[str, str]], data: list[dict[str, Any]]) -> dict[str, Any]:
        # Azure answers with dimension names in lower case.
        return {
            "metadatavalues": [
                {"name": {"value": name.lower(), "localizedValue": name.lower()}, "value": value}
                for name, value in labels
            ],
            "data": data,
        }

    # --- handlers ----------------------------------------------------------------------

    async def _admit(self, request: web.Request) -> web.Response | None:
        """Log the request, check the bearer token and apply a queued fault."""
        self.requests.append(LoggedRequest(request.method, request.path, dict(request.query)))
        return await self._faults.admit(request)

    def _parse(
        self, request: web.Request
    ) -> tuple[list[str], dt.datetime, dt.datetime, dict[str, str]]:
        query = request.query
        if query.get("api-version") not in API_VERSIONS:
            raise _BadRequest(
                "InvalidApiVersion", f"Unsupported api-version {query.get('api-version')!r}."
            )
        interval = query.get("interval", "PT1M")
        if interval.upper() != "PT1M":
            raise _BadRequest("BadRequest", f"Only the PT1M grain is emulated, not {interval!r}.")
        aggregation = {a.strip().lower() for a in query.get("aggregation", "average").split(",")}
        if aggregation - {"average"}:
            raise _BadRequest("BadRequest", "Only the average aggregation is emulated.")
        names = [n.strip() for n in query.get("metricnames", "").split(",") if n.strip()]
        if not names:
            raise _BadRequest("BadRequest", "metricnames is required.")
        now = self.clock.now()
        try:
            if "timespan" in query:
                left, _, right = query["timespan"].partition("/")
                start, end = _parse_moment(left), _parse_moment(right)
            else:
                end = now
                start = now - dt.timedelta(hours=1)
        except ValueError:
            raise _BadRequest(
                "BadRequest", f"Invalid timespan {query.get('timespan')!r}."
            ) from None
        if not start < end or (end - start) / _MINUTE > _MAX_POINTS:
            raise _BadRequest("BadRequest", "The timespan is empty or too long.")
        filters: dict[str, str] = {}
        raw_filter = query.get("$filter", "").strip()
        if raw_filter:
            for term in re.split(r"\s+and\s+", raw_filter, flags=re.IGNORECASE):
                match = _FILTER_TERM.match(term)
                if match is None:
                    raise _BadRequest("BadRequest", f"Unsupported $filter {raw_filter!r}.")
                filters[match.group(1)] = match.group(2)
        canonical = {name.lower(): name for name in (*_REQUEST_DIMENSIONS, *_LATENCY_DIMENSIONS)}
        normalized: dict[str, str] = {}
        for name, value in filters.items():
            if name.lower() not in canonical:
                raise _BadRequest("BadRequest", f"Unknown dimension {name!r} in $filter.")
            normalized[canonical[name.lower()]] = value
        return names, start, end, normalized

    async def _metrics(self, request: web.Request) -> web.Response:
        refused = await self._admit(request)
        if refused is not None:
            return refused
        try:
            names, start, end, filters = self._parse(request)
        except _BadRequest as bad:
            return arm_error(400, bad.code, bad.message)
        if len(names) == 1 and names[0].lower() in self.recorded:
            return web.json_response(self.recorded[names[0].lower()])
        resource = "/" + request.match_info["resource"]
        traffic = self.endpoints.get(_key(resource))
        if traffic is None:  # Azure knows only resources that exist
            return arm_error(404, "ResourceNotFound", f"The resource {resource} was not found.")
        minutes = list(self._minutes(start, end))
        value = []
        for name in names:
            canonical = self._metric_name(name)
            if canonical is None:
                return arm_error(
                    400,
                    "BadRequest",
                    f"Failed to find metric configuration for provider: {NAMESPACE}, "
                    f"resource Id: {resource}, metric: {name}.",
                )
            published = METRICS[canonical]
            allowed = published.dimensions
            extra = [d for d in filters if d not in allowed]
            if extra:
                return arm_error(
                    400,
                    "BadRequest",
                    f"Metric: {canonical} does not support requested dimension combination: "
                    f"{','.join(extra)}.",
                )
            value.append(
                {
                    "id": f"{resource}/providers/Microsoft.Insights/metrics/{canonical}",
                    "type": "Microsoft.Insights/metrics",
                    "name": {"value": canonical, "localizedValue": published.display_name},
                    "displayDescription": published.description,
                    "unit": published.unit,
                    "errorCode": "Success",
                    "timeseries": self._series(canonical, traffic, minutes, filters),
                }
            )
        body = {
            "cost": len(minutes),
            "timespan": f"{_service_time(start)}/{_service_time(end)}",
            "interval": "PT1M",
            "namespace": NAMESPACE.lower(),  # Azure answers with it lower-cased
            "resourceregion": self.region,
            "value": value,
        }
        return web.Response(text=json.dumps(body), content_type="application/json")

    @staticmethod
    def _metric_name(name: str) -> str | None:
        known = ["RequestsPerMinute", *(f"RequestLatency_{p}" for p in _PERCENTILE_FACTORS)]
        for candidate in known:
            if candidate.lower() == name.lower():
                return candidate
        return None
