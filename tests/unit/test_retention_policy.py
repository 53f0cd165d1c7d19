"""The retention policy: cutoffs per kind of row, and horizons refused as too short."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.card_signing import DEFAULT_TTL
from bot.notifiers import APPROVAL_CARD_TTL, CANCEL_CARD_TTL
from config.settings import SettingsError, load_settings, settings_from_mapping
from domain.retention import (
    LONGEST_CARD_LIFETIME,
    MIN_NONCE_DAYS,
    PruneCounts,
    RetentionPolicy,
    RetentionPolicyError,
)

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def test_the_defaults_keep_history_a_month_and_the_audit_trail_longest() -> None:
    cutoffs = RetentionPolicy().cutoffs(NOW)
    assert cutoffs.history == NOW - timedelta(days=30)
    assert cutoffs.nonces == NOW - timedelta(days=8)
    assert cutoffs.intents == NOW - timedelta(days=30)
    assert cutoffs.audit == NOW - timedelta(days=400)
    assert cutoffs.audit < cutoffs.history < cutoffs.nonces


def test_zero_means_forever() -> None:
    policy = RetentionPolicy(history_days=0, nonce_days=0, intent_days=0, audit_days=0)
    cutoffs = policy.cutoffs(NOW)
    assert (cutoffs.history, cutoffs.nonces, cutoffs.intents, cutoffs.audit) == (None,) * 4


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"audit_days": 20}, "MLBOT_RETENTION_AUDIT_DAYS"),  # shorter than the history
        ({"history_days": 0}, "MLBOT_RETENTION_AUDIT_DAYS"),  # history forever, audit not
        ({"nonce_days": 3}, "MLBOT_RETENTION_NONCE_DAYS"),  # a card could act twice
        ({"intent_days": 7}, "MLBOT_RETENTION_INTENT_DAYS"),  # a card could queue twice
        ({"history_days": -1}, "MLBOT_RETENTION_HISTORY_DAYS"),
        ({"batch_size": 0}, "MLBOT_RETENTION_BATCH_SIZE"),
    ],
)
def test_horizons_that_forget_too_early_are_refused(values: dict[str, int], named: str) -> None:
    with pytest.raises(RetentionPolicyError, match=named):
        RetentionPolicy(**values)


def test_audit_forever_goes_with_anything() -> None:
    RetentionPolicy(history_days=0, audit_days=0)
    RetentionPolicy(history_days=400, intent_days=400, audit_days=400)


def test_nonces_outlive_every_card_the_bot_signs() -> None:
    longest = max(DEFAULT_TTL, APPROVAL_CARD_TTL, CANCEL_CARD_TTL)
    assert longest <= LONGEST_CARD_LIFETIME < timedelta(days=MIN_NONCE_DAYS)


def test_counts_add_up_and_name_only_what_went() -> None:
    counts = PruneCounts(events=3, deliveries=6) + PruneCounts(events=1, audit_log=2)
    assert counts.total == 12
    assert counts.summary() == "events=4 deliveries=6 audit_log=2"
    assert PruneCounts().summary() == "" and PruneCounts().total == 0


def test_settings_build_the_policy() -> None:
    settings = settings_from_mapping(
        {"MLBOT_RETENTION_HISTORY_DAYS": "14", "MLBOT_RETENTION_AUDIT_DAYS": "0"}
    )
    policy = settings.retention_policy()
    assert (policy.history_days, policy.audit_days, policy.nonce_days) == (14, 0, 8)
    assert settings.retention_interval_minutes == 60


def test_a_short_audit_horizon_is_refused_at_start_up() -> None:
    with pytest.raises(SettingsError, match="MLBOT_RETENTION_AUDIT_DAYS"):
        load_settings(environ={"MLBOT_RETENTION_AUDIT_DAYS": "10"}, env_file=None)
