"""Settings: documented defaults, validation naming the setting, masking."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.settings import SettingsError, load_settings, settings_from_mapping, settings_report


def test_documented_defaults() -> None:
    s = settings_from_mapping({})
    assert s.monitoring_poll_interval_seconds == 30
    assert s.monitoring_max_delay_seconds == 300
    assert s.monitoring_backoff_multiplier == 2
    assert s.monitoring_max_wait_hours == 3
    assert s.long_running_job_notification_interval_hours == 4
    assert s.auto_retry_max_retries == 2 and s.auto_retry_timeout_seconds == 3600
    assert s.auto_rollback_enabled is True
    assert s.auto_rollback_error_threshold_percent == 5
    assert s.auto_rollback_latency_threshold_ms == 2000
    assert s.auto_rollback_environments == ("prod",)
    assert s.host == "127.0.0.1" and s.port == 3978
    assert s.database_url.startswith("sqlite+aiosqlite:///.mlbot/")
    assert s.local_mode and s.use_sandbox


def test_lists_are_comma_separated() -> None:
    s = settings_from_mapping(
        {"MLBOT_ALLOWED_TENANTS": " t1, t2 ,,t3", "MLBOT_ML_ENGINEERS_EMAIL": "a@x.io;b@x.io"}
    )
    assert s.allowed_tenants == ("t1", "t2", "t3")
    assert s.ml_engineers_email == ("a@x.io", "b@x.io")


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        ("MLBOT_PORT", "eighty", "MLBOT_PORT"),
        ("MLBOT_PORT", "70000", "MLBOT_PORT"),
        ("MLBOT_MONITORING_POLL_INTERVAL_SECONDS", "0", "MLBOT_MONITORING_POLL_INTERVAL_SECONDS"),
        ("MLBOT_MONITORING_LOG_LEVEL", "LOUD", "MLBOT_MONITORING_LOG_LEVEL"),
        ("MLBOT_DATABASE_URL", "mysql://x", "MLBOT_DATABASE_URL"),
        ("MicrosoftAppType", "Whatever", "MicrosoftAppType"),
        ("MLBOT_TEAMS_WEBHOOK_URL", "not-a-url", "MLBOT_TEAMS_WEBHOOK_URL"),
    ],
)
def test_invalid_value_names_the_setting(name: str, value: str, fragment: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({name: value})
    message = str(caught.value)
    assert message.startswith(f"invalid setting {fragment}:")
    assert "\n" not in message


def test_secret_never_appears_in_errors_or_report() -> None:
    secret = "super-secret-password-123"
    with pytest.raises(SettingsError) as caught:
        load_settings({"MicrosoftAppPassword": secret, "MLBOT_PORT": "x"})
    assert secret not in str(caught.value)
    settings = settings_from_mapping(
        {"MicrosoftAppPassword": secret, "MLBOT_DEVOPS_PAT": "pat-value-456789"}
    )
    report = {name: (shown, source) for name, shown, source in settings_report(settings, {})}
    assert report["MicrosoftAppPassword"][0] == "********"
    assert report["MLBOT_DEVOPS_PAT"][0] == "********"
    assert secret not in repr(settings) and secret not in str(report)
    assert report["MLBOT_PORT"] == ("3978", "default")


def test_log_level_case_insensitive() -> None:
    assert (
        settings_from_mapping({"MLBOT_MONITORING_LOG_LEVEL": "debug"}).monitoring_log_level
        == "DEBUG"
    )


def test_env_file_is_read(tmp_path, monkeypatch) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("MLBOT_PORT=4000\nMLBOT_BOT_NAME=Circuit Bot\n")
    monkeypatch.delenv("MLBOT_PORT", raising=False)
    monkeypatch.delenv("MLBOT_BOT_NAME", raising=False)
    settings = load_settings(env_file=str(env_file))
    assert settings.port == 4000 and settings.bot_display_name == "Circuit Bot"


def test_config_names_the_dotenv_file_only_for_what_it_holds(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("MLBOT_MONITORING_MAX_WAIT_HOURS=2\n")
    settings = load_settings({"MLBOT_PORT": "4000"}, env_file=str(env_file))
    settings = settings.model_copy(update={"host": "0.0.0.0"})  # as --host does
    rows = {
        name: origin
        for name, _, origin in settings_report(
            settings, {"MLBOT_PORT": "4000"}, env_file=str(env_file)
        )
    }
    assert rows["MLBOT_MONITORING_MAX_WAIT_HOURS"] == ".env"
    assert rows["MLBOT_PORT"] == "environment"
    assert rows["MLBOT_HOST"] == "start-up"
    assert rows["MLBOT_SANDBOX"] == "default"
