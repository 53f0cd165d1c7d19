"""The production health watch: judge a fresh deployment, roll it back when it degrades.

When a deployment reaches an environment with auto-rollback (prod by default), mlbot
watches its Azure ML online endpoint for an observation window. Each due `tick` samples
the last complete minute of Azure Monitor metrics and folds the check into the watch
(`monitoring.health`); an Azure Monitor alert about the endpoint makes its watch check
the metrics at once (`on_alert`), never counting as a check itself. After
`failure_threshold` failed checks in a row the channel is told why (`rollback_pending`,
with the figures and a chart) and, after a grace period in which an approver may cancel,
`rollback-pipeline` is queued (`rollback_queued`) - or, in dry-run, only described
(`rollback_dry_run`). Checks that cannot be measured call humans
(`health_inconclusive`); a quiet window ends `deployment_healthy`.

Restart safety: every watch lives in `deployment_watches`; events are recorded before
the state that follows them, with keys derived from the watch, so a crash between the
two repeats nothing; a rollback is claimed (status `queuing`) before it is queued, so two
replicas or a restart never queue it twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from domain.events import EventKind
from monitoring.azure_calls import AzureCallError
from monitoring.health import (
    AlertSignal,
    CheckResult,
    CheckSource,
    CheckStatus,
    Decision,
    HealthPolicy,
    HealthState,
    MetricsSample,
    Outcome,
    Percentile,
    evaluate,
    next_state,
)
from monitoring.pipeline_runs import OutcomeUnknown, PipelineRuns
from store.deployment_watches import (
    CANCELLED,
    DRY_RUN,
    HEALTHY,
    HELD,
    QUEUING,
    ROLLBACK_FAILED,
    ROLLBACK_PENDING,
    ROLLED_BACK,
    WATCHING,
    DeploymentWatchStore,
    WatchRecord,
)
from store.monitoring import MonitoringStore, NewEvent, Observation

log = logging.getLogger(__name__)

ROLLBACK_PIPELINE = "rollback-pipeline"
DEFAULT_GRACE = timedelta(minutes=2)
# After a rollback is queued, no other rollback of the environment starts for this long
# (the run needs time to put the previous model back and for traffic to settle).
DEFAULT_COOLDOWN = timedelta(hours=1)
MAX_CHART_POINTS = 60  # per-minute points kept for the card's chart
MAX_REASON_CHARS = 400  # the pipeline's `reason` parameter stays readable in Azure DevOps
# A rollback whose queuing outcome is unknown is looked for again after this long.
ROLLBACK_RECHECK = timedelta(minutes=1)


class CancelOutcome(StrEnum):
    CANCELLED = "cancelled"
    NOT_FOUND = "not_found"
    TOO_LATE = "too_late"  # already queued (or being queued)
    NOT_PENDING = "not_pending"  # no rollback was pending for this watch


# --- ports -------------------------------------------------------------------------------


class Metrics(Protocol):
    """What the watch needs from `monitoring.metrics.EndpointMetrics`."""

    async def sample(
        self,
        resource_id: str,
        start: datetime,
        end: datetime,
        percentile: Percentile = ...,
        *,
        deployment: str | None = ...,
    ) -> MetricsSample: ...


def environments_from_settings(settings: Any) -> Callable[[str], bool]:
    """`settings.auto_rollback_enabled` and the environment in
    `auto_rollback_environments` (case-insensitive), read at each call."""

    def enabled(environment: str) -> bool:
        if not settings.auto_rollback_enabled:
            return False
        wanted = {str(name).strip().lower() for name in settings.auto_rollback_environments}
        return environment.strip().lower() in wanted

    return enabled


def rollback_intent_key(watch: str) -> str:
    """The `queue_once` key of a watch's automatic rollback."""
    return f"rollback:{watch}"


def watch_key(environment: str, endpoint_resource_id: str, deployment: str, run_id: str) -> str:
    endpoint = endpoint_resource_id.rstrip("/").rsplit("/", 1)[-1]
    return f"{environment.lower()}/{endpoint}/{deployment}/{run_id}"


# --- state <-> JSON ----------------------------------------------------------------------


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat() if moment is not None else None


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _round(value: float | None) -> float | None:
    return round(value, 2) if value is not None else None


def thresholds_to_json(policy: HealthPolicy) -> dict[str, Any]:
    """The policy as events carry it, so cards can state the thresholds."""
    return {
        "error_rate_percent": policy.error_threshold_percent,
        "latency_ms": policy.latency_threshold_ms,
        "latency_percentile": policy.latency_percentile.value,
        "failure_threshold": policy.failure_threshold,
        "min_requests": policy.min_requests,
        "interval_seconds": policy.interval.total_seconds(),
        "window_seconds": policy.window.total_seconds(),
    }


def check_to_json(result: CheckResult) -> dict[str, Any]:
    """The figures of one check, as stored and as shown on the cards."""
    return {
        "at": _iso(result.at),
        "status": result.status.value,
        "source": result.source.value,
        "reason": result.reason,
        "requests": _round(result.requests),
        "errors_5xx": _round(result.errors_5xx),
        "error_rate_percent": _round(result.error_rate_percent),
        "latency_ms": _round(result.latency_ms),
        "low_traffic": result.low_traffic,
        "breaches": list(result.breaches),
    }


def _check_from_json(data: Mapping[str, Any], fallback: datetime) -> CheckResult:
    def number(key: str) -> float | None:
        value = data.get(key)
        return float(value) if isinstance(value, int | float) else None

    try:
        status = CheckStatus(data.get("status", "failed"))
        source = CheckSource(data.get("source", "metrics"))
    except ValueError:
        status, source = CheckStatus.FAILED, CheckSource.METRICS
    return CheckResult(
        status,
        _time(data.get("at")) or fallback,
        str(data.get("reason") or ""),
        requests=number("requests") or 0.0,
        errors_5xx=number("errors_5xx") or 0.0,
        error_rate_percent=number("error_rate_percent"),
        latency_ms=number("latency_ms"),
        low_traffic=bool(data.get("low_traffic")),
        breaches=tuple(str(b) for b in data.get("breaches") or ()),
        source=source,
    )


def state_to_json(state: HealthState, extra: Mapping[str, Any]) -> dict[str, Any]:
    """The `HealthState` essentials plus the watch's own memory (`extra`: the last
    measured span, chart points, recent results)."""
    return {
        **extra,
        "consecutive_failures": state.consecutive_failures,
        "consecutive_inconclusive": state.consecutive_inconclusive,
        "checks": state.checks,
        "failed_checks": state.failed_checks,
        "inconclusive_checks": state.inconclusive_checks,
        "low_traffic_checks": state.low_traffic_checks,
        "humans_alerted": state.humans_alerted,
        "failure_streak": [check_to_json(r) for r in state.failure_streak],
        "seen_alerts": sorted(state.seen_alerts),
        "outcome": state.outcome.value if state.outcome else None,
        "ended_at": _iso(state.ended_at),
    }


def state_from_json(
    data: Mapping[str, Any], started_at: datetime, policy: HealthPolicy
) -> HealthState:
    def count(key: str) -> int:
        value = data.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) else 0

    outcome = data.get("outcome")
    streak = data.get("failure_streak")
    return HealthState(
        started_at=started_at,
        policy=policy,
        consecutive_failures=count("consecutive_failures"),
        consecutive_inconclusive=count("consecutive_inconclusive"),
        checks=count("checks"),
        failed_checks=count("failed_checks"),
        inconclusive_checks=count("inconclusive_checks"),
        low_traffic_checks=count("low_traffic_checks"),
        humans_alerted=bool(data.get("humans_alerted")),
        failure_streak=tuple(
            _check_from_json(item, started_at)
            for item in (streak if isinstance(streak, list) else [])
            if isinstance(item, Mapping)
        ),
        seen_alerts=frozenset(str(a) for a in data.get("seen_alerts") or ()),
        outcome=Outcome(outcome) if outcome in {o.value for o in Outcome} else None,
        ended_at=_time(data.get("ended_at")),
    )


def _merge_points(stored: Any, sample: MetricsSample | None) -> list[dict[str, Any]]:
    """The window's per-minute figures for the chart, newest last, one per minute."""
    points: dict[str, dict[str, Any]] = {}
    for point in stored if isinstance(stored, list) else []:
        if isinstance(point, Mapping) and isinstance(point.get("at"), str):
            points[point["at"]] = dict(point)
    for p in sample.points if sample is not None else ():
        rate = 100.0 * p.errors_5xx / p.requests if p.requests > 0 else None
        points[_iso(p.at) or ""] = {
            "at": _iso(p.at),
            "requests": _round(p.requests),
            "errors_5xx": _round(p.errors_5xx),
            "error_rate_percent": _round(rate),
            "latency_ms": _round(p.latency_ms),
        }
    return [points[k] for k in sorted(points)][-MAX_CHART_POINTS:]


# --- the service -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Watch:
    """A stored watch read back into the pure model."""

    record: WatchRecord
    state: HealthState
    extra: dict[str, Any]


class DeploymentWatcher:
    """Starts, ticks and concludes deployment health watches; queues the rollback."""

    def __init__(
        self,
        store: DeploymentWatchStore,
        metrics: Metrics,
        runs: PipelineRuns | None,
        events: MonitoringStore,
        policy: Callable[[], HealthPolicy],
        clock: Callable[[], datetime],
        rollback_pipeline: Callable[[], str] = lambda: ROLLBACK_PIPELINE,
        dry_run: bool | Callable[[], bool] = False,
        grace: timedelta = DEFAULT_GRACE,
        *,
        enabled_for: Callable[[str], bool] = lambda environment: True,
        cooldown: timedelta = DEFAULT_COOLDOWN,
    ) -> None:
        if grace < timedelta(0):
            raise ValueError("the grace period cannot be negative")
        self._store = store
        self._metrics = metrics
        self._runs = runs
        self._events = events
        self._policy = policy
        self._clock = clock
        self._rollback_pipeline = rollback_pipeline
        self._dry_run = dry_run
        self._grace = grace
        self._enabled_for = enabled_for
        self._cooldown = cooldown
        # Ticks and alerts both rewrite a watch's state: one at a time per process
        # (replicas are kept apart by the compare-and-set writes).
        self._lock = asyncio.Lock()

    @property
    def dry_run(self) -> bool:
        return self._dry_run() if callable(self._dry_run) else self._dry_run

    # --- starting ------------------------------------------------------------------------
    async def start(
        self, environment: str, endpoint_resource_id: str, deployment: str, run_id: str
    ) -> WatchRecord | None:
        """Watch a deployment that just completed; None when its environment has no
        auto-rollback. Starting the same deployment run again returns the same watch."""
        if not self._enabled_for(environment):
            return None
        now = self._clock()
        policy = self._policy()
        _, span_end = policy.check_span(now)
        record, created = await self._store.start_watch(
            key=watch_key(environment, endpoint_resource_id, deployment, run_id),
            environment=environment.lower(),
            endpoint_resource_id=endpoint_resource_id,
            deployment=deployment,
            run_id=run_id,
            now=now,
            next_check_at=self._after(span_end, policy),
            state={"last_span_end": _iso(span_end)},
        )
        if created:
            log.info("health watch started: %s", record.key)
        return record

    # --- the timer -----------------------------------------------------------------------
    async def tick(self) -> int:
        """Run every due check and end every due grace period; returns how many."""
        done = 0
        async with self._lock:
            now = self._clock()
            for record in await self._store.due(now):
                try:
                    if record.status == ROLLBACK_PENDING:
                        await self._end_grace(record, now)
                    elif record.status == QUEUING:
                        await self._queue_rollback(record, now)
                    else:
                        await self._check(record, now)
                    done += 1
                except Exception:
                    # One broken watch must not stop the others; it is due again next tick.
                    log.exception("health watch %s failed this tick", record.key)
        return done

    async def next_due_at(self) -> datetime | None:
        return await self._store.next_due_at()

    async def _check(self, record: WatchRecord, now: datetime) -> None:
        policy = self._policy()
        watch = self._load(record, policy)
        start, end = policy.check_span(now)
        last = _time(watch.extra.get("last_span_end"))
        if last is not None and end <= last:
            # This minute was judged already (an early or repeated tick).
            await self._store.save(
                record.id,
                now=now,
                status=WATCHING,
                state=state_to_json(watch.state, watch.extra),
                next_check_at=self._after(last, policy),
                expected_status=WATCHING,
            )
            return
        sample: MetricsSample | None = None
        try:
            sample = await self._metrics.sample(
                record.endpoint_resource_id,
                start,
                end,
                policy.latency_percentile,
                deployment=record.deployment,
            )
            result = evaluate(sample, policy, at=end)
        except Exception as exc:  # typed AzureCallError, or anything the SDK threw
            log.warning("health watch %s: metrics unavailable: %s", record.key, exc)
            result = evaluate(None, policy, at=end, error=str(exc) or type(exc).__name__)
        extra = {
            **watch.extra,
            "last_span_end": _iso(end),
            "points": _merge_points(watch.extra.get("points"), sample),
        }
        await self._fold(replace(watch, extra=extra), result, now, self._after(end, policy))

    # --- alerts --------------------------------------------------------------------------
    async def on_alert(self, signal: AlertSignal) -> int:
        """Re-check now every watch of the endpoint an Azure Monitor alert is about.

        The alert itself is never counted as a check: whoever can post one (a leaked
        hook secret) could otherwise fail a deployment. It only makes the watch read the
        endpoint's metrics at once instead of at the next interval; a minute already
        judged is not judged twice. Returns how many watches it matched.
        """
        matched = 0
        async with self._lock:
            now = self._clock()
            for record in await self._store.watching():
                if not signal.targets(record.endpoint_resource_id):
                    continue
                matched += 1
                if record.status != WATCHING:
                    continue  # a rollback is already pending or queued
                try:
                    await self._check(record, now)
                except Exception:
                    # The watch stays due at its next interval, which checks it anyway.
                    log.exception(
                        "health watch %s: the re-check an alert asked for failed", record.key
                    )
        return matched

    # --- deciding ------------------------------------------------------------------------
    def _load(self, record: WatchRecord, policy: HealthPolicy) -> _Watch:
        state = state_from_json(record.state, record.started_at, policy)
        known = {"last_span_end", "points", "recent"}
        extra = {k: v for k, v in record.state.items() if k in known}
        return _Watch(record, state, extra)

    async def _fold(
        self, watch: _Watch, result: CheckResult, now: datetime, next_check_at: datetime | None
    ) -> None:
        record = watch.record
        state, decision = next_state(watch.state, result)
        recent = [*(watch.extra.get("recent") or []), check_to_json(result)][-10:]
        extra = {**watch.extra, "recent": recent}
        stored = state_to_json(state, extra)
        if decision is Decision.ROLLBACK:
            await self._rollback_due(record, state, stored, now)
            return
        status = WATCHING
        if decision is Decision.ALERT_HUMANS:
            # Counted checks make the key unique per alert and the same after a restart.
            await self._record(
                now,
                f"{record.key}/inconclusive/{state.inconclusive_checks}",
                EventKind.HEALTH_INCONCLUSIVE,
                {
                    **self._about(record),
                    "inconclusive_checks": state.consecutive_inconclusive,
                    "reason": result.reason,
                    "window_ends_at": _iso(state.window_ends_at),
                },
            )
        elif decision is Decision.HEALTHY_DONE:
            status, next_check_at = HEALTHY, None
            await self._record(
                now,
                f"{record.key}/healthy",
                EventKind.DEPLOYMENT_HEALTHY,
                {
                    **self._about(record),
                    "checks": state.checks,
                    "failed_checks": state.failed_checks,
                    "inconclusive_checks": state.inconclusive_checks,
                    "low_traffic_checks": state.low_traffic_checks,
                    "watched_seconds": (result.at - record.started_at).total_seconds(),
                    "thresholds": thresholds_to_json(state.policy),
                    "points": extra.get("points") or [],
                },
            )
        await self._store.save(
            record.id,
            now=now,
            status=status,
            state=stored,
            next_check_at=next_check_at,
            expected_status=WATCHING,
        )

    async def _rollback_due(
        self, record: WatchRecord, state: HealthState, stored: dict[str, Any], now: datetime
    ) -> None:
        policy = state.policy
        payload = {
            **self._about(record),
            "reason": rollback_reason(state),
            "checks": [check_to_json(r) for r in state.failure_streak],
            "thresholds": thresholds_to_json(policy),
            "points": stored.get("points") or [],
            "dry_run": self.dry_run,
            "grace_seconds": self._grace.total_seconds(),
            "rollback_at": _iso(now + self._grace),
        }
        busy = await self._store.active_rollback(
            record.environment, now, excluding=record.id
        ) or await self._store.in_cooldown(
            record.environment, record.endpoint_resource_id, record.deployment, now
        )
        if busy is not None:
            # One rollback at a time per environment: a second one could roll back the
            # model the first one just restored.
            await self._record(
                now,
                f"{record.key}/rollback_skipped",
                EventKind.ROLLBACK_SKIPPED,
                {**payload, "blocking_watch": busy.key, "blocking_run_id": busy.rollback_run_id},
            )
            await self._store.save(
                record.id, now=now, status=HELD, state=stored, next_check_at=None
            )
            return
        await self._record(
            now, f"{record.key}/rollback_pending", EventKind.ROLLBACK_PENDING, payload
        )
        saved = await self._store.save(
            record.id,
            now=now,
            status=ROLLBACK_PENDING,
            state=stored,
            next_check_at=now + self._grace,
            expected_status=WATCHING,
        )
        if saved and self._grace <= timedelta(0):
            fresh = await self._store.get(record.key)
            if fresh is not None:
                await self._end_grace(fresh, now)

    async def _end_grace(self, record: WatchRecord, now: datetime) -> None:
        """The grace period is over and nobody cancelled: queue the rollback."""
        params, about = self._rollback_parameters(record)
        if self.dry_run or self._runs is None:
            if not await self._store.transition(
                record.id, expected_status=ROLLBACK_PENDING, status=DRY_RUN, now=now
            ):
                return  # cancelled in the meantime
            await self._record(
                now,
                f"{record.key}/rollback_dry_run",
                EventKind.ROLLBACK_DRY_RUN,
                {
                    **about,
                    "template_parameters": params,
                    "why": "dry run" if self.dry_run else "Azure DevOps is not configured",
                },
            )
            return
        # Claim first: a cancel, another replica or a restart cannot queue it as well.
        if not await self._store.transition(
            record.id, expected_status=ROLLBACK_PENDING, status=QUEUING, now=now
        ):
            return
        await self._queue_rollback(record, now)

    def _rollback_parameters(self, record: WatchRecord) -> tuple[dict[str, str], dict[str, Any]]:
        """The rollback run's parameters, and what its events say about it."""
        policy = self._policy()
        state = state_from_json(record.state, record.started_at, policy)
        reason = rollback_reason(state)
        params = {
            "environment": record.environment,
            "endpoint": record.endpoint,
            "deployment": record.deployment,
            "reason": reason,
        }
        about = {
            **self._about(record),
            "reason": reason,
            "pipeline": self._rollback_pipeline(),
            # The evidence again: the queued (or dry-run) card must say why on its own.
            **self._evidence(record),
        }
        return params, about

    def _evidence(self, record: WatchRecord) -> dict[str, Any]:
        """Why the deployment was judged unhealthy: failed checks, thresholds, chart points."""
        policy = self._policy()
        state = state_from_json(record.state, record.started_at, policy)
        return {
            "checks": [check_to_json(r) for r in state.failure_streak],
            "thresholds": thresholds_to_json(policy),
            "points": record.state.get("points") or [],
        }

    async def evidence(self, key: str) -> dict[str, Any]:
        """The evidence of a watch (empty when it is not known), for a card that answers a
        decision about it: the figures stay in view after the decision."""
        record = await self._store.get(key)
        return self._evidence(record) if record is not None else {}

    async def _queue_rollback(self, record: WatchRecord, now: datetime) -> None:
        """Queue the claimed rollback once (`queue_once`, keyed by the watch).

        Also what a later tick does for a watch still `queuing`: a POST whose outcome was
        unknown (a timeout, a 5xx), or a process that stopped mid-way, is resolved by
        looking for the run, never by queuing a second one.
        """
        if self._runs is None:
            return
        params, about = self._rollback_parameters(record)
        try:
            outcome = await self._runs.queue_once(
                rollback_intent_key(record.key), self._rollback_pipeline(), params
            )
        except AzureCallError as exc:
            # Refused by Azure DevOps: no run was queued.
            log.error("health watch %s: could not queue the rollback: %s", record.key, exc)
            await self._record(
                now,
                f"{record.key}/rollback_failed",
                EventKind.ROLLBACK_FAILED,
                {**about, "error": str(exc) or type(exc).__name__},
            )
            await self._store.save(
                record.id,
                now=now,
                status=ROLLBACK_FAILED,
                state=record.state,
                next_check_at=None,
                expected_status=QUEUING,
            )
            return
        except Exception:
            # Anything else leaves the outcome open: looked at again at the next check.
            log.exception("health watch %s: queuing the rollback did not finish", record.key)
            outcome = OutcomeUnknown(rollback_intent_key(record.key), "unexpected error")
        if isinstance(outcome, OutcomeUnknown):
            log.warning(
                "health watch %s: rollback outcome unknown (%s); checking again",
                record.key,
                outcome.reason,
            )
            await self._store.save(
                record.id,
                now=now,
                status=QUEUING,
                state=record.state,
                next_check_at=now + ROLLBACK_RECHECK,
                expected_status=QUEUING,
            )
            return
        run = outcome.run
        await self._record(
            now,
            f"{record.key}/rollback_queued",
            EventKind.ROLLBACK_QUEUED,
            {**about, "run_id": run.run_id, "web_url": run.web_url},
        )
        await self._store.save(
            record.id,
            now=now,
            status=ROLLED_BACK,
            state=record.state,
            next_check_at=None,
            expected_status=QUEUING,
            rollback_run_id=run.run_id,
            cooldown_until=now + self._cooldown,
        )

    # --- cancelling ----------------------------------------------------------------------
    async def cancel_rollback(self, key: str, actor: str) -> CancelOutcome:
        """An approver stops a pending automatic rollback during its grace period."""
        now = self._clock()
        record = await self._store.get(key)
        if record is None:
            return CancelOutcome.NOT_FOUND
        if record.status in (QUEUING, ROLLED_BACK, ROLLBACK_FAILED):
            return CancelOutcome.TOO_LATE
        if record.status != ROLLBACK_PENDING:
            return CancelOutcome.NOT_PENDING
        if not await self._store.transition(
            record.id, expected_status=ROLLBACK_PENDING, status=CANCELLED, now=now
        ):
            fresh = await self._store.get(key)
            if fresh is not None and fresh.status == CANCELLED:
                return CancelOutcome.CANCELLED
            return CancelOutcome.TOO_LATE
        await self._record(
            now,
            f"{key}/rollback_cancelled",
            EventKind.ROLLBACK_CANCELLED,
            {**self._about(record), **self._evidence(record), "cancelled_by": actor},
        )
        return CancelOutcome.CANCELLED

    # --- manual rollbacks ----------------------------------------------------------------
    async def rollback_in_progress(self, environment: str) -> WatchRecord | None:
        """An automatic rollback of the environment being queued or just queued (in its
        cooldown): a manual rollback now would roll back what it just restored."""
        busy = await self._store.active_rollback(environment.strip().lower(), self._clock())
        return busy if busy is not None and busy.status != ROLLBACK_PENDING else None

    async def supersede(self, environment: str, actor: str) -> int:
        """Someone rolled the environment back by hand: its watches have nothing left to
        judge, and a pending automatic rollback must not follow. Returns how many ended."""
        environment = environment.strip().lower()
        ended = 0
        async with self._lock:
            now = self._clock()
            for status in (ROLLBACK_PENDING, WATCHING):
                for record in await self._store.with_status(environment, status):
                    if status == ROLLBACK_PENDING:
                        outcome = await self.cancel_rollback(record.key, actor)
                        ended += outcome is CancelOutcome.CANCELLED
                    elif await self._store.transition(
                        record.id, expected_status=WATCHING, status=CANCELLED, now=now
                    ):
                        log.info(
                            "health watch %s ended: %s rolled back by hand", record.key, environment
                        )
                        ended += 1
        return ended

    # --- helpers -------------------------------------------------------------------------
    @staticmethod
    def _after(span_end: datetime, policy: HealthPolicy) -> datetime:
        """When the next interval is complete and published: the next check's time."""
        return span_end + policy.interval + policy.metrics_delay

    @staticmethod
    def _about(record: WatchRecord) -> dict[str, Any]:
        return {
            "watch_key": record.key,
            "environment": record.environment,
            "endpoint": record.endpoint,
            "endpoint_resource_id": record.endpoint_resource_id,
            "deployment": record.deployment,
            "deployment_run_id": record.run_id,
            "started_at": _iso(record.started_at),
        }

    async def _record(
        self, now: datetime, key: str, kind: EventKind, payload: dict[str, Any]
    ) -> bool:
        created = await self._events.apply(
            Observation(
                now,
                events=[NewEvent(key, kind.value, {**payload, "at": _iso(now)})],
            )
        )
        return bool(created)


def rollback_reason(state: HealthState) -> str:
    """One line for the pipeline's `reason` parameter and the card."""
    streak = state.failure_streak
    if not streak:
        return "automatic rollback: the deployment failed its health checks"
    text = (
        f"automatic rollback: {len(streak)} failed health checks in a row; "
        f"last: {streak[-1].reason}"
    )
    return text if len(text) <= MAX_REASON_CHARS else text[: MAX_REASON_CHARS - 1] + "…"


__all__ = [
    "DEFAULT_COOLDOWN",
    "DEFAULT_GRACE",
    "ROLLBACK_PIPELINE",
    "CancelOutcome",
    "DeploymentWatcher",
    "EventKind",
    "Metrics",
    "environments_from_settings",
    "rollback_intent_key",
    "rollback_reason",
    "watch_key",
]
