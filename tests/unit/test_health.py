"""Pure health decisions: thresholds, traffic, streaks, alerts and the end of the window."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from monitoring.health import (
    AlertCondition,
    AlertPayloadError,
    CheckResult,
    CheckStatus,
    Decision,
    HealthPolicy,
    HealthState,
    MetricsSample,
    Outcome,
    Percentile,
    evaluate,
    next_state,
    parse_common_alert,
)
from tests.conftest import make_settings

START = dt.datetime(2025, 3, 1, 10, 0, tzinfo=dt.UTC)
POLICY = HealthPolicy()
ENDPOINT = (
    "/subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/rg-mlops/providers/"
    "Microsoft.MachineLearningServices/workspaces/ws-plant/onlineEndpoints/churn-prod"
)


def at(minute: float) -> dt.datetime:
    return START + dt.timedelta(minutes=minute)


def sample(requests: float = 100, errors: float = 0, latency: float | None = 200) -> MetricsSample:
    return MetricsSample(
        start=at(0), end=at(1), requests=requests, errors_5xx=errors, latency_ms=latency
    )


def check(status: str, minute: float, *, low_traffic: bool = False) -> CheckResult:
    return CheckResult(CheckStatus(status), at(minute), status, low_traffic=low_traffic)


def run(results: list[CheckResult], state: HealthState | None = None) -> list[Decision]:
    current = state or HealthState(started_at=START)
    decisions = []
    for result in results:
        current, decision = next_state(current, result)
        decisions.append(decision)
    return decisions


# --- evaluate: thresholds --------------------------------------------------------------


@pytest.mark.parametrize(
    ("errors", "status"),
    [(5, CheckStatus.PASSED), (5.1, CheckStatus.FAILED), (0, CheckStatus.PASSED)],
    ids=["exactly 5 %", "just above", "none"],
)
def test_error_rate_threshold_is_strictly_above(errors: float, status: CheckStatus) -> None:
    result = evaluate(sample(requests=100, errors=errors), POLICY)
    assert result.status is status
    assert result.error_rate_percent == pytest.approx(errors)


@pytest.mark.parametrize(
    ("latency", "status"),
    [(2000, CheckStatus.PASSED), (2000.5, CheckStatus.FAILED), (None, CheckStatus.PASSED)],
    ids=["exactly 2000 ms", "just above", "not reported"],
)
def test_latency_threshold_is_strictly_above(latency: float | None, status: CheckStatus) -> None:
    assert evaluate(sample(latency=latency), POLICY).status is status


def test_both_breaches_are_named_with_figures() -> None:
    result = evaluate(sample(requests=200, errors=30, latency=2500), POLICY)
    assert result.failed
    assert result.breaches == ("error_rate", "latency")
    assert result.reason == (
        "error rate 15 % > 5 % (30 of 200 requests); P95 latency 2500 ms > 2000 ms"
    )
    assert result.sample is not None and result.requests == 200


def test_custom_thresholds_and_percentile_label() -> None:
    policy = HealthPolicy(error_threshold_percent=1, latency_threshold_ms=500)
    p99 = MetricsSample(at(0), at(1), 100, 2, 600, Percentile.P99)
    result = evaluate(p99, policy)
    assert result.failed and "P99 latency 600 ms > 500 ms" in result.reason


# --- evaluate: traffic -----------------------------------------------------------------


def test_too_little_traffic_passes_as_low_traffic() -> None:
    # One error out of two requests is not a 50 % error rate.
    result = evaluate(sample(requests=2, errors=1, latency=9000), POLICY)
    assert result.passed and result.low_traffic
    assert "too little traffic" in result.reason
    assert result.error_rate_percent == pytest.approx(50)  # still shown, not acted on


def test_no_traffic_passes_as_low_traffic() -> None:
    result = evaluate(sample(requests=0, errors=0, latency=None), POLICY)
    assert result.passed and result.low_traffic and result.error_rate_percent is None


def test_exactly_min_requests_is_judged() -> None:
    result = evaluate(sample(requests=20, errors=2), POLICY)
    assert result.failed and not result.low_traffic


def test_query_error_is_inconclusive() -> None:
    result = evaluate(None, POLICY, at=at(3), error="HTTP 500: boom")
    assert result.inconclusive and result.at == at(3)
    assert result.reason == "metrics unavailable: HTTP 500: boom"
    with pytest.raises(ValueError):
        evaluate(None, POLICY)


# --- the watch -------------------------------------------------------------------------


def test_rollback_exactly_at_the_third_consecutive_failure() -> None:
    decisions = run([check("failed", 1), check("failed", 2), check("failed", 3)])
    assert decisions == [Decision.KEEP_WATCHING, Decision.KEEP_WATCHING, Decision.ROLLBACK]


def test_rollback_state_cites_the_streak_and_ignores_what_follows() -> None:
    state = HealthState(started_at=START)
    for minute in (1, 2, 3):
        state, decision = next_state(state, check("failed", minute))
    assert state.outcome is Outcome.ROLLBACK and state.ended_at == at(3)
    assert [r.at for r in state.failure_streak] == [at(1), at(2), at(3)]
    again, decision = next_state(state, check("failed", 4))
    assert decision is Decision.IGNORED and again is state


def test_a_pass_resets_the_failure_streak_so_flapping_never_rolls_back() -> None:
    flapping = [check("failed" if m % 2 else "passed", m) for m in range(1, 12)]
    assert Decision.ROLLBACK not in run(flapping)
    assert (
        run([check("failed", 1), check("failed", 2), check("passed", 3), check("failed", 4)])
        == [Decision.KEEP_WATCHING] * 4
    )


def test_low_traffic_neither_resets_nor_extends_the_failure_streak() -> None:
    quiet = check("passed", 2, low_traffic=True)
    decisions = run([check("failed", 1), quiet, check("failed", 3), check("failed", 4)])
    assert decisions[-1] is Decision.ROLLBACK
    only_quiet = [check("passed", m, low_traffic=True) for m in range(1, 10)]
    assert set(run(only_quiet)) == {Decision.KEEP_WATCHING}


def test_inconclusive_holds_the_failure_streak() -> None:
    decisions = run(
        [check("failed", 1), check("inconclusive", 2), check("failed", 3), check("failed", 4)]
    )
    assert decisions[-1] is Decision.ROLLBACK


def test_four_inconclusive_in_a_row_alert_humans_once() -> None:
    decisions = run([check("inconclusive", m) for m in range(1, 9)])
    assert decisions[:4] == [Decision.KEEP_WATCHING] * 3 + [Decision.ALERT_HUMANS]
    assert decisions[4:] == [Decision.KEEP_WATCHING] * 4  # no alert storm


def test_a_conclusive_check_rearms_the_human_alert() -> None:
    runs = [check("inconclusive", m) for m in range(1, 5)]
    runs += [check("passed", 5)]
    runs += [check("inconclusive", m) for m in range(6, 10)]
    decisions = run(runs)
    assert decisions.count(Decision.ALERT_HUMANS) == 2
    assert decisions[3] is Decision.ALERT_HUMANS and decisions[8] is Decision.ALERT_HUMANS


def test_interrupted_inconclusive_run_does_not_alert() -> None:
    seq = ["inconclusive"] * 3 + ["passed"] + ["inconclusive"] * 3
    assert Decision.ALERT_HUMANS not in run([check(s, m + 1) for m, s in enumerate(seq)])


def test_window_end_is_healthy_done() -> None:
    decisions = run([check("passed", m) for m in range(1, 31)])
    assert decisions[-1] is Decision.HEALTHY_DONE
    assert set(decisions[:-1]) == {Decision.KEEP_WATCHING}


def test_window_end_with_an_open_streak_waits_for_its_outcome() -> None:
    state = HealthState(started_at=START)
    state, _ = next_state(state, check("failed", 29))
    state, decision = next_state(state, check("failed", 30))
    assert decision is Decision.KEEP_WATCHING  # not declared healthy mid-streak
    _, decision = next_state(state, check("failed", 31))
    assert decision is Decision.ROLLBACK
    recovered, decision = next_state(state, check("passed", 31))
    assert decision is Decision.HEALTHY_DONE and recovered.outcome is Outcome.HEALTHY


def test_an_open_streak_does_not_hold_the_watch_forever() -> None:
    state = HealthState(started_at=START)
    state, _ = next_state(state, check("failed", 30))
    for minute in (31, 32):
        state, decision = next_state(state, check("inconclusive", minute))
        assert decision is Decision.KEEP_WATCHING
    _, decision = next_state(state, check("inconclusive", 33))  # window + 3 intervals
    assert decision is Decision.HEALTHY_DONE


def test_results_up_to_the_start_are_ignored() -> None:
    state = HealthState(started_at=START)
    same, decision = next_state(state, check("failed", 0))
    assert decision is Decision.IGNORED and same is state


def test_policy_from_settings_and_check_span() -> None:
    settings = make_settings(
        MLBOT_AUTO_ROLLBACK_ERROR_THRESHOLD_PERCENT="2.5",
        MLBOT_AUTO_ROLLBACK_LATENCY_THRESHOLD_MS="800",
        MLBOT_AUTO_ROLLBACK_LATENCY_PERCENTILE="p99",
        MLBOT_AUTO_ROLLBACK_WINDOW_MINUTES="10",
    )
    policy = HealthPolicy.from_settings(settings)
    assert policy.error_threshold_percent == 2.5 and policy.latency_threshold_ms == 800
    assert policy.latency_percentile is Percentile.P99
    assert policy.window == dt.timedelta(minutes=10)
    assert policy.failure_threshold == 3 and policy.inconclusive_limit == 4
    assert policy.min_requests == 20 and policy.interval == dt.timedelta(minutes=1)
    # A check at 10:05:40 measures the last whole minute published: 10:02-10:03.
    assert POLICY.check_span(at(5 + 40 / 60)) == (at(2), at(3))


def test_policy_settings_are_all_operator_settings() -> None:
    settings = make_settings(
        MLBOT_AUTO_ROLLBACK_MIN_REQUESTS="50",
        MLBOT_AUTO_ROLLBACK_FAILURE_THRESHOLD="2",
        MLBOT_AUTO_ROLLBACK_INCONCLUSIVE_LIMIT="6",
        MLBOT_AUTO_ROLLBACK_INTERVAL_SECONDS="120",
    )
    policy = HealthPolicy.from_settings(settings)
    assert (policy.min_requests, policy.failure_threshold, policy.inconclusive_limit) == (50, 2, 6)
    assert policy.interval == dt.timedelta(minutes=2)


def test_policy_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        HealthPolicy(failure_threshold=0)
    with pytest.raises(ValueError):
        HealthPolicy(error_threshold_percent=120)


# --- alerts ----------------------------------------------------------------------------


ALERTS = "Microsoft.AlertsManagement"
NAMESPACE = "Microsoft.MachineLearningServices/workspaces/onlineEndpoints"


def alert_body(condition: str = "Fired", alert_id: str = "a1", **essentials: Any) -> dict:
    return {
        "schemaId": "azureMonitorCommonAlertSchema",
        "data": {
            "essentials": {
                "alertId": f"/subscriptions/s/providers/{ALERTS}/alerts/{alert_id}",
                "alertRule": "churn-prod-latency",
                "severity": "Sev2",
                "signalType": "Metric",
                "monitorCondition": condition,
                "monitoringService": "Platform",
                "alertTargetIDs": [ENDPOINT.lower()],
                "configurationItems": ["churn-prod"],
                "firedDateTime": "2025-03-01T10:04:10.1234567Z",
                "resolvedDateTime": "2025-03-01T10:09:00.0000000Z"
                if condition == "Resolved"
                else None,
                "description": "P95 latency of the prod endpoint",
                "essentialsVersion": "1.0",
                "alertContextVersion": "1.0",
                **essentials,
            },
            "alertContext": {
                "properties": None,
                "conditionType": "SingleResourceMultipleMetricCriteria",
                "condition": {
                    "windowSize": "PT5M",
                    "allOf": [
                        {
                            "metricName": "RequestLatency_P95",
                            "metricNamespace": NAMESPACE,
                            "operator": "GreaterThan",
                            "threshold": "2000",
                            "timeAggregation": "Average",
                            "dimensions": [],
                            "metricValue": 2750.5,
                        }
                    ],
                },
            },
            "customProperties": None,
        },
    }


def test_parse_fired_metric_alert() -> None:
    signal = parse_common_alert(alert_body())
    assert signal.condition is AlertCondition.FIRED
    assert signal.rule == "churn-prod-latency" and signal.severity == "Sev2"
    assert signal.fired_at == dt.datetime(2025, 3, 1, 10, 4, 10, 123456, tzinfo=dt.UTC)
    assert signal.at == signal.fired_at and signal.resolved_at is None
    assert signal.targets(ENDPOINT)  # Azure lower-cases ids; ARM ids are case-insensitive
    assert signal.targets(ENDPOINT + "/")
    assert not signal.targets(ENDPOINT.replace("churn-prod", "churn-dev"))
    (criterion,) = signal.criteria
    assert criterion.metric_name == "RequestLatency_P95" and criterion.metric_value == 2750.5


def test_a_deployment_target_counts_for_its_endpoint() -> None:
    body = alert_body(alertTargetIDs=[ENDPOINT.lower() + "/deployments/blue"])
    assert parse_common_alert(body).targets(ENDPOINT)
    assert not parse_common_alert(body).targets(ENDPOINT + "-2")


@pytest.mark.parametrize(
    "body",
    [
        [],
        {"schemaId": "Microsoft.Insights/activityLogs", "data": {}},
        {"schemaId": "azureMonitorCommonAlertSchema", "data": {}},
        {"schemaId": "azureMonitorCommonAlertSchema", "data": {"essentials": {}}},
    ],
    ids=["not an object", "other schema", "no essentials", "no condition"],
)
def test_unusable_alert_bodies_are_refused(body: Any) -> None:
    with pytest.raises(AlertPayloadError):
        parse_common_alert(body)
