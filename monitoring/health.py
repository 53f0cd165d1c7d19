"""Is a freshly deployed model healthy? Pure decisions for the production health watch.

After a deployment to an environment with auto-rollback, mlbot samples the online
endpoint's Azure Monitor metrics once per interval for an observation window and turns
each sample into a check (`evaluate`). A run of failed checks rolls the deployment back;
a run of checks that could not be judged calls humans instead (`next_state`). Azure
Monitor metric alerts are read here (`parse_common_alert`) only to know which endpoint
to re-check now: an alert is never a check. Nothing here does I/O or reads a clock:
every time comes in with the data, so hours of watching replay in a test.

Decisions worth knowing (modelled on Flagger's / Argo Rollouts' analysis):

- A check *fails* when the 5xx error rate is above `error_threshold_percent` or the
  latency percentile is above `latency_threshold_ms` (strictly above: exactly 5 % or
  exactly 2000 ms passes), and only when the interval carried at least `min_requests`
  requests - one error out of two requests is not a 50 % error rate.
- **Low traffic** (fewer than `min_requests`, including none) is a *pass with
  `low_traffic=True`*, not inconclusive: a quiet night must neither roll back nor page
  anyone. It proves nothing about health either, so it leaves a running failure streak
  as it is (fail, quiet, fail, fail still rolls back); only a pass with enough traffic
  (or a Resolved alert) resets the streak.
- **Inconclusive** is reserved for "we could not measure": the metrics query failed or
  answered nonsense. It neither passes nor fails, holds the failure streak, and after
  `inconclusive_limit` in a row humans are alerted once (again only after a conclusive
  check in between).
- The watch ends *healthy* at the first check at or after the window's end - unless a
  failure streak is open, in which case it waits for that streak to resolve (a pass ends
  healthy, more failures roll back) for at most `failure_threshold` more intervals.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any, NamedTuple

from monitoring.azureml import parse_time

if TYPE_CHECKING:
    from config.settings import Settings

COMMON_ALERT_SCHEMA = "azureMonitorCommonAlertSchema"


class Percentile(StrEnum):
    """Latency percentiles Azure ML online endpoints publish as `RequestLatency_<P>`."""

    P50 = "P50"
    P90 = "P90"
    P95 = "P95"
    P99 = "P99"

    @property
    def metric_name(self) -> str:
        return f"RequestLatency_{self.value}"


# --- samples -----------------------------------------------------------------------------


class MetricPoint(NamedTuple):
    """One minute of an endpoint's traffic, for the chart on a rollback card."""

    at: datetime
    requests: float
    errors_5xx: float
    latency_ms: float | None  # None: no latency reported that minute (no traffic)


@dataclass(frozen=True, slots=True)
class MetricsSample:
    """What Azure Monitor reported for one endpoint over [start, end)."""

    start: datetime
    end: datetime
    requests: float
    errors_5xx: float
    latency_ms: float | None  # the configured percentile; None when nothing was reported
    percentile: Percentile = Percentile.P95
    points: tuple[MetricPoint, ...] = ()

    @property
    def error_rate_percent(self) -> float | None:
        """5xx share of all requests; None without requests (0/0 is not 0 %)."""
        if self.requests <= 0:
            return None
        return 100.0 * self.errors_5xx / self.requests


# --- policy ------------------------------------------------------------------------------

# Defaults for what Settings does not (yet) carry; `from_settings` picks up a setting of
# the named attribute as soon as it exists.
DEFAULT_MIN_REQUESTS = 20  # per interval; below this a check cannot fail
DEFAULT_FAILURE_THRESHOLD = 3  # consecutive failed checks before a rollback (Flagger: threshold)
DEFAULT_INCONCLUSIVE_LIMIT = 4  # consecutive unmeasurable checks before humans are alerted
DEFAULT_WINDOW = timedelta(minutes=30)  # how long a new deployment is watched
DEFAULT_INTERVAL = timedelta(minutes=1)  # one check per interval (Azure's finest grain)
# Azure Monitor publishes platform metrics a minute or more late; a check measures the
# interval that ended this long ago so it does not judge a half-reported minute.
DEFAULT_METRICS_DELAY = timedelta(minutes=2)


@dataclass(frozen=True, slots=True)
class HealthPolicy:
    """Thresholds and timing of the health watch."""

    error_threshold_percent: float = 5.0
    latency_threshold_ms: float = 2000.0
    latency_percentile: Percentile = Percentile.P95
    min_requests: int = DEFAULT_MIN_REQUESTS
    failure_threshold: int = DEFAULT_FAILURE_THRESHOLD
    inconclusive_limit: int = DEFAULT_INCONCLUSIVE_LIMIT
    window: timedelta = DEFAULT_WINDOW
    interval: timedelta = DEFAULT_INTERVAL
    metrics_delay: timedelta = DEFAULT_METRICS_DELAY

    def __post_init__(self) -> None:
        if not 0 <= self.error_threshold_percent <= 100:
            raise ValueError("error_threshold_percent must be between 0 and 100")
        if not self.latency_threshold_ms > 0:
            raise ValueError("latency_threshold_ms must be positive")
        if self.min_requests < 0:
            raise ValueError("min_requests must not be negative")
        if self.failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        if self.inconclusive_limit < 1:
            raise ValueError("inconclusive_limit must be at least 1")
        if self.window <= timedelta(0) or self.interval <= timedelta(0):
            raise ValueError("window and interval must be positive")
        if self.metrics_delay < timedelta(0):
            raise ValueError("metrics_delay must not be negative")

    @classmethod
    def from_settings(cls, settings: Settings) -> HealthPolicy:
        """The policy the `MLBOT_AUTO_ROLLBACK_*` settings describe."""
        return cls(
            error_threshold_percent=float(settings.auto_rollback_error_threshold_percent),
            latency_threshold_ms=float(settings.auto_rollback_latency_threshold_ms),
            latency_percentile=Percentile(settings.auto_rollback_latency_percentile),
            min_requests=settings.auto_rollback_min_requests,
            failure_threshold=settings.auto_rollback_failure_threshold,
            inconclusive_limit=settings.auto_rollback_inconclusive_limit,
            window=timedelta(minutes=settings.auto_rollback_window_minutes),
            interval=timedelta(seconds=settings.auto_rollback_interval_seconds),
            metrics_delay=timedelta(seconds=settings.auto_rollback_metrics_delay_seconds),
        )

    def check_span(self, now: datetime) -> tuple[datetime, datetime]:
        """The [start, end) a check made at `now` should query: the last complete,
        already-published interval, aligned to whole intervals like Azure's time grain."""
        end = _floor(now - self.metrics_delay, self.interval)
        return end - self.interval, end


def _floor(moment: datetime, step: timedelta) -> datetime:
    epoch = datetime(1970, 1, 1, tzinfo=moment.tzinfo)
    steps = math.floor((moment - epoch) / step)
    return epoch + steps * step


# --- checks ------------------------------------------------------------------------------


class CheckStatus(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    INCONCLUSIVE = "inconclusive"  # could not measure: neither healthy nor unhealthy


class CheckSource(StrEnum):
    METRICS = "metrics"  # a scheduled sample of Azure Monitor metrics
    ALERT = "alert"  # an Azure Monitor alert posted to /api/hooks/alerts


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The verdict of one check, with the figures a card shows."""

    status: CheckStatus
    at: datetime  # when the measured interval ended (or the alert fired / resolved)
    reason: str  # one line for humans, figures included
    requests: float = 0.0
    errors_5xx: float = 0.0
    error_rate_percent: float | None = None
    latency_ms: float | None = None
    low_traffic: bool = False  # passed only because there was too little traffic to judge
    breaches: tuple[str, ...] = ()  # "error_rate" and/or "latency" when failed on metrics
    source: CheckSource = CheckSource.METRICS
    dedupe_key: str | None = None  # alerts: the same notification delivered twice counts once
    sample: MetricsSample | None = None

    @property
    def passed(self) -> bool:
        return self.status is CheckStatus.PASSED

    @property
    def failed(self) -> bool:
        return self.status is CheckStatus.FAILED

    @property
    def inconclusive(self) -> bool:
        return self.status is CheckStatus.INCONCLUSIVE


def _fmt(value: float) -> str:
    return f"{value:.1f}".removesuffix(".0")


def _count(value: float) -> str:
    # Azure reports per-minute averages; people count requests in whole numbers.
    return f"{round(value):,}"


def evaluate(
    sample: MetricsSample | None,
    policy: HealthPolicy,
    *,
    at: datetime | None = None,
    error: str | None = None,
) -> CheckResult:
    """Judge one interval. `sample=None` means the metrics query failed (`error` says why).

    `at` defaults to the sample's end; it is required when there is no sample.
    """
    when = at or (sample.end if sample is not None else None)
    if when is None:
        raise ValueError("evaluate needs `at` when there is no sample")
    if sample is None:
        return CheckResult(
            CheckStatus.INCONCLUSIVE,
            when,
            f"metrics unavailable: {error}" if error else "metrics unavailable",
        )
    rate = sample.error_rate_percent
    measured = CheckResult(
        CheckStatus.PASSED,
        when,
        "",
        requests=sample.requests,
        errors_5xx=sample.errors_5xx,
        error_rate_percent=rate,
        latency_ms=sample.latency_ms,
        sample=sample,
    )
    if sample.requests < policy.min_requests:
        return replace(
            measured,
            reason=f"too little traffic to judge: {_fmt(sample.requests)} requests "
            f"(fewer than {policy.min_requests})",
            low_traffic=True,
        )
    breaches: list[str] = []
    parts: list[str] = []
    if rate is not None and rate > policy.error_threshold_percent:
        breaches.append("error_rate")
        parts.append(
            f"error rate {_fmt(rate)} % > {_fmt(policy.error_threshold_percent)} % "
            f"({_count(sample.errors_5xx)} of {_count(sample.requests)} requests)"
        )
    label = f"{sample.percentile.value} latency"
    if sample.latency_ms is not None and sample.latency_ms > policy.latency_threshold_ms:
        breaches.append("latency")
        parts.append(
            f"{label} {_fmt(sample.latency_ms)} ms > {_fmt(policy.latency_threshold_ms)} ms"
        )
    if breaches:
        return replace(
            measured, status=CheckStatus.FAILED, reason="; ".join(parts), breaches=tuple(breaches)
        )
    latency_text = (
        f"{label} {_fmt(sample.latency_ms)} ms"
        if sample.latency_ms is not None
        else f"{label} not reported"
    )
    return replace(
        measured,
        reason=f"error rate {_fmt(rate or 0.0)} %, {latency_text}, "
        f"{_fmt(sample.requests)} requests",
    )


# --- the watch ---------------------------------------------------------------------------


class Decision(StrEnum):
    KEEP_WATCHING = "keep_watching"
    ROLLBACK = "rollback"  # failure_threshold checks failed in a row
    ALERT_HUMANS = "alert_humans"  # inconclusive_limit checks could not be judged in a row
    HEALTHY_DONE = "healthy_done"  # the window passed without a rollback
    # The watch had ended, the result measured time up to its start (the first checks,
    # because of the metrics delay), or the same alert came twice.
    IGNORED = "ignored"


class Outcome(StrEnum):
    ROLLBACK = "rollback"
    HEALTHY = "healthy"


@dataclass(frozen=True, slots=True)
class HealthState:
    """Where one deployment's watch stands; replace it with what `next_state` returns."""

    started_at: datetime
    policy: HealthPolicy = field(default_factory=HealthPolicy)
    consecutive_failures: int = 0
    consecutive_inconclusive: int = 0
    checks: int = 0
    failed_checks: int = 0
    inconclusive_checks: int = 0
    low_traffic_checks: int = 0
    humans_alerted: bool = False  # for the current inconclusive run
    failure_streak: tuple[CheckResult, ...] = ()  # the failing checks a rollback cites
    seen_alerts: frozenset[str] = frozenset()
    outcome: Outcome | None = None
    ended_at: datetime | None = None

    @property
    def window_ends_at(self) -> datetime:
        return self.started_at + self.policy.window

    @property
    def deadline(self) -> datetime:
        """The latest end of a watch whose failure streak is still open at window end."""
        return self.window_ends_at + self.policy.interval * self.policy.failure_threshold

    @property
    def finished(self) -> bool:
        return self.outcome is not None


def next_state(state: HealthState, result: CheckResult) -> tuple[HealthState, Decision]:
    """Fold one check into the watch and say what to do now."""
    if state.finished or result.at <= state.started_at:
        return state, Decision.IGNORED
    if result.dedupe_key is not None:
        if result.dedupe_key in state.seen_alerts:
            return state, Decision.IGNORED
        state = replace(state, seen_alerts=state.seen_alerts | {result.dedupe_key})
    policy = state.policy
    state = replace(state, checks=state.checks + 1)

    if result.failed:
        state = replace(
            state,
            consecutive_failures=state.consecutive_failures + 1,
            consecutive_inconclusive=0,
            humans_alerted=False,
            failed_checks=state.failed_checks + 1,
            failure_streak=(*state.failure_streak, result),
        )
        if state.consecutive_failures >= policy.failure_threshold:
            return replace(state, outcome=Outcome.ROLLBACK, ended_at=result.at), Decision.ROLLBACK
    elif result.inconclusive:
        state = replace(
            state,
            consecutive_inconclusive=state.consecutive_inconclusive + 1,
            inconclusive_checks=state.inconclusive_checks + 1,
        )
        if state.consecutive_inconclusive >= policy.inconclusive_limit and not state.humans_alerted:
            return replace(state, humans_alerted=True), Decision.ALERT_HUMANS
    else:
        state = replace(state, consecutive_inconclusive=0, humans_alerted=False)
        if result.low_traffic:
            state = replace(state, low_traffic_checks=state.low_traffic_checks + 1)
        else:
            state = replace(state, consecutive_failures=0, failure_streak=())

    if result.at >= state.window_ends_at and (
        state.consecutive_failures == 0 or result.at >= state.deadline
    ):
        return replace(state, outcome=Outcome.HEALTHY, ended_at=result.at), Decision.HEALTHY_DONE
    return state, Decision.KEEP_WATCHING


# --- Azure Monitor alerts (common alert schema) ----------------------------------------


class AlertPayloadError(ValueError):
    """The body is not a common-alert-schema notification we can use."""


class AlertCondition(StrEnum):
    FIRED = "Fired"
    RESOLVED = "Resolved"


@dataclass(frozen=True, slots=True)
class AlertCriterion:
    """One metric condition of a metric alert rule, with the value that tripped it."""

    metric_name: str
    operator: str
    threshold: str
    time_aggregation: str
    metric_value: float | None


@dataclass(frozen=True, slots=True)
class AlertSignal:
    """The parts of an Azure Monitor alert notification the health watch uses."""

    alert_id: str
    rule: str
    severity: str  # "Sev0" (critical) ... "Sev4" (verbose)
    condition: AlertCondition
    signal_type: str  # "Metric", "Log", "Activity Log"
    target_resource_ids: tuple[str, ...]  # as Azure sends them: usually lower-cased
    fired_at: datetime | None
    resolved_at: datetime | None
    description: str = ""
    criteria: tuple[AlertCriterion, ...] = ()

    @property
    def at(self) -> datetime | None:
        if self.condition is AlertCondition.RESOLVED:
            return self.resolved_at or self.fired_at
        return self.fired_at

    def targets(self, resource_id: str) -> bool:
        """Whether the alert is about this resource or one below it (an endpoint's
        deployment). ARM ids are case-insensitive and Azure lower-cases them in alerts."""
        wanted = resource_id.rstrip("/").lower()
        return any(
            target.rstrip("/").lower() == wanted or target.lower().startswith(wanted + "/")
            for target in self.target_resource_ids
        )


def _text(mapping: Mapping[str, Any], key: str) -> str:
    value = mapping.get(key)
    return "" if value is None else str(value)


def _criteria(context: Any) -> tuple[AlertCriterion, ...]:
    condition = context.get("condition") if isinstance(context, Mapping) else None
    all_of = condition.get("allOf") if isinstance(condition, Mapping) else None
    if not isinstance(all_of, Sequence) or isinstance(all_of, str):
        return ()
    found: list[AlertCriterion] = []
    for item in all_of:
        if not isinstance(item, Mapping):
            continue
        raw_value = item.get("metricValue")
        try:
            value = float(raw_value) if raw_value is not None else None
        except (TypeError, ValueError):
            value = None
        found.append(
            AlertCriterion(
                metric_name=_text(item, "metricName"),
                operator=_text(item, "operator"),
                threshold=_text(item, "threshold"),
                time_aggregation=_text(item, "timeAggregation"),
                metric_value=value,
            )
        )
    return tuple(found)


def parse_common_alert(body: Any) -> AlertSignal:
    """Read an Azure Monitor alert posted with the common alert schema."""
    if not isinstance(body, Mapping):
        raise AlertPayloadError("the alert body is not a JSON object")
    if body.get("schemaId") != COMMON_ALERT_SCHEMA:
        raise AlertPayloadError(
            f"unsupported alert schema {body.get('schemaId')!r}: enable the common alert "
            "schema on the action group's webhook"
        )
    data = body.get("data")
    essentials = data.get("essentials") if isinstance(data, Mapping) else None
    if not isinstance(essentials, Mapping):
        raise AlertPayloadError("the alert has no data.essentials section")
    raw_condition = _text(essentials, "monitorCondition")
    try:
        condition = AlertCondition(raw_condition)
    except ValueError:
        raise AlertPayloadError(f"unknown monitorCondition {raw_condition!r}") from None
    # The samples spell it `alertTargetIDs`, the schema's field table `alertTargetIds`.
    targets = essentials.get("alertTargetIDs") or essentials.get("alertTargetIds") or []
    if isinstance(targets, str) or not isinstance(targets, Sequence):
        raise AlertPayloadError("alertTargetIDs is not a list")
    alert_id = _text(essentials, "alertId")
    if not alert_id:
        raise AlertPayloadError("the alert has no alertId")
    return AlertSignal(
        alert_id=alert_id,
        rule=_text(essentials, "alertRule"),
        severity=_text(essentials, "severity"),
        condition=condition,
        signal_type=_text(essentials, "signalType"),
        target_resource_ids=tuple(str(t) for t in targets if t),
        fired_at=parse_time(essentials.get("firedDateTime")),
        resolved_at=parse_time(essentials.get("resolvedDateTime")),
        description=_text(essentials, "description"),
        criteria=_criteria(data.get("alertContext") if isinstance(data, Mapping) else None),
    )


def _describe_criteria(criteria: tuple[AlertCriterion, ...]) -> str:
    parts = []
    for c in criteria:
        value = f" (value {_fmt(c.metric_value)})" if c.metric_value is not None else ""
        parts.append(f"{c.metric_name} {c.operator} {c.threshold}{value}".strip())
    return "; ".join(parts)
