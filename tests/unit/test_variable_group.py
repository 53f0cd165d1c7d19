"""Variable group over settings: precedence, bad values, periodic refresh with a fake clock."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import pytest

from config.settings import Settings, settings_from_mapping
from monitoring.azure_calls import TransientAzureError
from monitoring.variable_group import (
    GROUP_KEYS,
    VariableGroupRefresher,
    explicit_fields,
    merge_variable_group,
)

GROUP = {
    "monitoringMaxWaitHours": "5",
    "monitoringPollIntervalSeconds": "15",
    "monitoringLogLevel": "debug",
    "teamsWebhookUrl": "https://example.webhook.office.com/workflows/abc",
    "longRunningJobNotificationIntervalHours": "2",
    "mlEngineersEmail": "a@example.com, b@example.com",
    "circuitOwners": "PLANT001/=ada@example.com|bo@example.com",
    "manualCircuits": "PLANT001/CIRCUIT01,PLANT002/CIRCUIT02",
    "autoRollbackEnabled": "false",
    "autoRollbackErrorThreshold": "2.5%",
    "autoRollbackLatencyThreshold": "1500ms",
    "autoRollbackEnvironments": "prod, staging",
    "unrelatedPipelineVariable": "ignored",
}


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime(2025, 1, 1, tzinfo=UTC)
        self.sleeps: list[float] = []

    def __call__(self) -> datetime:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += timedelta(seconds=seconds)


def test_every_documented_key_maps_to_a_setting() -> None:
    assert set(GROUP_KEYS) == {k for k in GROUP if k != "unrelatedPipelineVariable"}
    assert all(field in Settings.model_fields for field in GROUP_KEYS.values())


def test_group_values_apply_over_defaults() -> None:
    base = settings_from_mapping({})
    merged = merge_variable_group(base, explicit_fields(base), GROUP)
    s = merged.settings
    assert merged.problems == ()
    assert s.monitoring_max_wait_hours == 5.0
    assert s.monitoring_poll_interval_seconds == 15
    assert s.monitoring_log_level == "DEBUG"
    assert s.teams_webhook_url.get_secret_value() == GROUP["teamsWebhookUrl"]
    assert s.long_running_job_notification_interval_hours == 2.0
    assert s.ml_engineers_email == ("a@example.com", "b@example.com")
    assert s.manual_circuits == ("PLANT001/CIRCUIT01", "PLANT002/CIRCUIT02")
    assert s.circuit_owners == ("PLANT001/=ada@example.com|bo@example.com",)
    assert s.auto_rollback_enabled is False
    assert s.auto_rollback_error_threshold_percent == 2.5
    assert s.auto_rollback_latency_threshold_ms == 1500.0
    assert s.auto_rollback_environments == ("prod", "staging")
    assert set(merged.applied) == set(GROUP_KEYS)
    # The input is untouched (settings are frozen values).
    assert base.monitoring_poll_interval_seconds == 30


def test_environment_beats_group_and_group_beats_defaults() -> None:
    base = settings_from_mapping({"MLBOT_MONITORING_POLL_INTERVAL_SECONDS": "45"})
    explicit = explicit_fields(base)
    assert "monitoring_poll_interval_seconds" in explicit
    merged = merge_variable_group(base, explicit, GROUP)
    assert merged.settings.monitoring_poll_interval_seconds == 45  # environment
    assert merged.settings.monitoring_max_wait_hours == 5.0  # group over default
    assert "monitoringPollIntervalSeconds" not in merged.applied


def test_explicit_names_may_be_aliases() -> None:
    base = settings_from_mapping({})
    merged = merge_variable_group(base, {"MLBOT_MONITORING_LOG_LEVEL"}, GROUP)
    assert merged.settings.monitoring_log_level == "INFO"
    assert merged.settings.monitoring_poll_interval_seconds == 15


def test_missing_keys_keep_defaults() -> None:
    base = settings_from_mapping({})
    merged = merge_variable_group(base, frozenset(), {"monitoringMaxWaitHours": "1.5"})
    assert merged.settings.monitoring_max_wait_hours == 1.5
    assert merged.settings.monitoring_poll_interval_seconds == 30
    assert merged.settings.long_running_job_notification_interval_hours == 4.0


def test_group_keys_match_without_case_as_in_azure_devops() -> None:
    base = settings_from_mapping({})
    merged = merge_variable_group(
        base,
        frozenset(),
        {"MONITORINGMAXWAITHOURS": "1.5", "manualcircuits": "PLANT001/CIRCUIT01"},
    )
    assert merged.settings.monitoring_max_wait_hours == 1.5
    assert merged.settings.manual_circuits == ("PLANT001/CIRCUIT01",)
    assert set(merged.applied) == {"monitoringMaxWaitHours", "manualCircuits"}


@pytest.mark.parametrize(
    ("key", "value", "field"),
    [
        ("monitoringPollIntervalSeconds", "often", "monitoring_poll_interval_seconds"),
        ("monitoringPollIntervalSeconds", "0", "monitoring_poll_interval_seconds"),
        ("monitoringMaxWaitHours", "-1", "monitoring_max_wait_hours"),
        ("monitoringLogLevel", "LOUD", "monitoring_log_level"),
        ("teamsWebhookUrl", "ftp://nope", "teams_webhook_url"),
    ],
)
def test_bad_group_value_is_reported_and_previous_value_kept(
    key: str, value: str, field: str
) -> None:
    base = settings_from_mapping({})
    previous = merge_variable_group(base, frozenset(), GROUP).settings
    merged = merge_variable_group(base, frozenset(), {**GROUP, key: value}, previous=previous)
    assert [p.key for p in merged.problems] == [key]
    assert getattr(merged.settings, field) == getattr(previous, field)
    problem = merged.problems[0]
    assert problem.setting == Settings.model_fields[field].alias
    assert "keeping" in problem.message
    # The other values still apply.
    assert merged.settings.manual_circuits == ("PLANT001/CIRCUIT01", "PLANT002/CIRCUIT02")


def test_bad_secret_value_is_not_echoed() -> None:
    base = settings_from_mapping({})
    merged = merge_variable_group(base, frozenset(), {"teamsWebhookUrl": "not-a-url-secret"})
    assert merged.problems
    assert "not-a-url-secret" not in str(merged.problems[0])


def test_bad_value_without_previous_keeps_the_default() -> None:
    base = settings_from_mapping({})
    merged = merge_variable_group(base, frozenset(), {"monitoringPollIntervalSeconds": "x"})
    assert merged.settings.monitoring_poll_interval_seconds == 30
    assert "keeping 30" in merged.problems[0].message


class GroupSource:
    def __init__(self, values: Mapping[str, str]) -> None:
        self.values: Mapping[str, str] | Exception = values
        self.calls = 0

    async def __call__(self) -> Mapping[str, str]:
        self.calls += 1
        if isinstance(self.values, Exception):
            raise self.values
        return dict(self.values)


async def test_refresh_notifies_listeners_only_on_change() -> None:
    clock = FakeClock()
    base = settings_from_mapping({})
    source = GroupSource({"monitoringPollIntervalSeconds": "15"})
    refresher = VariableGroupRefresher(base, source, interval_s=60, clock=clock, sleep=clock.sleep)
    seen: list[tuple[int, int]] = []
    refresher.add_listener(
        lambda old, new: seen.append(
            (old.monitoring_poll_interval_seconds, new.monitoring_poll_interval_seconds)
        )
    )
    async_seen: list[int] = []

    async def async_listener(old: Settings, new: Settings) -> None:
        async_seen.append(new.monitoring_poll_interval_seconds)

    refresher.add_listener(async_listener)

    assert refresher.last_refreshed is None
    assert await refresher.refresh_once() is True
    assert refresher.current.monitoring_poll_interval_seconds == 15
    assert refresher.last_refreshed == clock.now
    assert await refresher.refresh_once() is False  # same values: no notification
    source.values = {"monitoringPollIntervalSeconds": "20"}
    assert await refresher.refresh_once() is True
    assert seen == [(30, 15), (15, 20)]
    assert async_seen == [15, 20]


async def test_refresh_keeps_last_good_settings_on_bad_value_and_on_failure() -> None:
    clock = FakeClock()
    base = settings_from_mapping({})
    source = GroupSource({"monitoringPollIntervalSeconds": "15"})
    refresher = VariableGroupRefresher(base, source, interval_s=60, clock=clock, sleep=clock.sleep)
    await refresher.refresh_once()
    first_refresh = refresher.last_refreshed
    assert first_refresh is not None

    source.values = {"monitoringPollIntervalSeconds": "soon"}
    clock.now += timedelta(minutes=1)
    assert await refresher.refresh_once() is False
    assert refresher.current.monitoring_poll_interval_seconds == 15
    assert [p.key for p in refresher.problems] == ["monitoringPollIntervalSeconds"]

    source.values = TransientAzureError("Azure DevOps", "read variable group", "HTTP 503")
    clock.now += timedelta(minutes=1)
    assert await refresher.refresh_once() is False
    assert refresher.current.monitoring_poll_interval_seconds == 15
    assert isinstance(refresher.last_error, TransientAzureError)
    assert refresher.last_refreshed == first_refresh + timedelta(minutes=1)

    source.values = {}
    assert await refresher.refresh_once() is True  # key removed: back to the default
    assert refresher.current.monitoring_poll_interval_seconds == 30
    assert refresher.problems == ()
    assert refresher.last_error is None


async def test_run_refreshes_every_interval_on_the_injected_clock() -> None:
    clock = FakeClock()
    base = settings_from_mapping({"MLBOT_VARIABLE_GROUP_REFRESH_SECONDS": "300"})
    source = GroupSource({"manualCircuits": "PLANT001/CIRCUIT01"})
    stop = asyncio.Event()
    values = iter(
        [
            {"manualCircuits": "PLANT002/CIRCUIT02"},
            {"manualCircuits": "PLANT002/CIRCUIT02"},
            {"manualCircuits": "PLANT003/CIRCUIT03"},
        ]
    )

    async def sleep(seconds: float) -> None:
        await clock.sleep(seconds)
        nxt = next(values, None)
        if nxt is None:
            stop.set()
        else:
            source.values = nxt

    changes: list[tuple[str, ...]] = []
    refresher = VariableGroupRefresher(base, source, clock=clock, sleep=sleep)
    refresher.add_listener(lambda old, new: changes.append(new.manual_circuits))
    await asyncio.wait_for(refresher.run(stop), timeout=5)

    assert refresher.interval_s == 300
    assert source.calls == 4
    assert clock.sleeps == [300, 300, 300, 300]
    assert changes == [("PLANT001/CIRCUIT01",), ("PLANT002/CIRCUIT02",), ("PLANT003/CIRCUIT03",)]
    assert refresher.last_refreshed == datetime(2025, 1, 1, tzinfo=UTC) + timedelta(seconds=900)


async def test_listener_failure_does_not_block_others() -> None:
    base = settings_from_mapping({})
    source = GroupSource({"monitoringMaxWaitHours": "2"})
    refresher = VariableGroupRefresher(base, source)
    got: list[float] = []

    def broken(old: Settings, new: Settings) -> None:
        raise RuntimeError("boom")

    refresher.add_listener(broken)
    unsubscribe = refresher.add_listener(lambda o, n: got.append(n.monitoring_max_wait_hours))
    await refresher.refresh_once()
    assert got == [2.0]
    unsubscribe()
    source.values = {"monitoringMaxWaitHours": "3"}
    assert await refresher.refresh_once() is True
    assert got == [2.0]


async def test_config_report_names_the_variable_group_as_the_source() -> None:
    from config.settings import settings_report

    base = settings_from_mapping({"MLBOT_MONITORING_MAX_WAIT_HOURS": "2"})
    source = GroupSource({"monitoringPollIntervalSeconds": "15", "monitoringMaxWaitHours": "9"})
    refresher = VariableGroupRefresher(base, source, interval_s=60)
    await refresher.refresh_once()
    assert refresher.applied_fields == {"monitoring_poll_interval_seconds"}
    rows = {
        name: (shown, origin)
        for name, shown, origin in settings_report(
            refresher.current, {}, group_fields=refresher.applied_fields
        )
    }
    assert rows["MLBOT_MONITORING_POLL_INTERVAL_SECONDS"] == (
        "15",
        "variable group mlops-pipeline-settings",
    )
    # Given explicitly but not through the environment or a .env file.
    assert rows["MLBOT_MONITORING_MAX_WAIT_HOURS"] == ("2.0", "start-up")
    assert rows["MLBOT_PORT"] == ("3978", "default")
