"""Production cannot be downgraded by configuration: what production is comes from the
process environment only, unknown environment names are production, and the variable
group cannot change a security setting or send cards over plain HTTP."""

from __future__ import annotations

import pytest

from bot.access import AccessPolicy, Actor, decide
from config.live import LIVE_FIELDS, SECURITY_FIELDS, VARIABLE_GROUP_KEYS
from config.settings import Settings, SettingsError, settings_from_mapping
from monitoring.variable_group import explicit_fields, merge_variable_group

OPERATOR = Actor("operator-oid", None, None, None)
# Local actions on: these tests are about environments, not about local mode.
BASE = {
    "MLBOT_OPERATORS": "operator-oid",
    "MLBOT_APPROVERS": "approver-oid",
    "MLBOT_LOCAL_ACTIONS": "true",
}


def _policy(settings: Settings) -> AccessPolicy:
    return AccessPolicy.from_settings(settings, {})


def _with_group(group: dict[str, str], **environment: str) -> Settings:
    base = settings_from_mapping({**BASE, **environment})
    return merge_variable_group(base, explicit_fields(base), group).settings


def test_the_variable_group_cannot_make_prod_non_production() -> None:
    settings = _with_group({"autoRollbackEnvironments": "staging"})
    assert settings.auto_rollback_environments == ("staging",)  # it still decides the watch
    assert not decide(_policy(settings), OPERATOR, "rollback", "prod").allowed


@pytest.mark.parametrize("environment", ["production", "prod_", "Prod-EU", "live", "PRD"])
def test_unknown_environment_names_are_production(environment: str) -> None:
    policy = _policy(settings_from_mapping(BASE))
    assert policy.is_production(environment)
    assert not decide(policy, OPERATOR, "rollback", environment).allowed


@pytest.mark.parametrize("environment", ["dev", "Staging", "QA", "test"])
def test_environments_known_not_to_be_production_stay_with_operators(environment: str) -> None:
    assert decide(_policy(settings_from_mapping(BASE)), OPERATOR, "rollback", environment).allowed


def test_production_environments_come_from_the_process_environment() -> None:
    settings = settings_from_mapping(
        {
            **BASE,
            "MLBOT_PRODUCTION_ENVIRONMENTS": "prod,staging-eu",
            "MLBOT_NON_PRODUCTION_ENVIRONMENTS": "dev,staging-eu",
        }
    )
    policy = _policy(settings)
    assert policy.is_production("staging-eu")  # listed as production: production wins
    assert not policy.is_production("dev")


def test_no_security_setting_is_taken_from_the_variable_group() -> None:
    assert not SECURITY_FIELDS & LIVE_FIELDS
    assert {"operators", "approvers", "production_environments", "devops_hook_secret"} <= (
        SECURITY_FIELDS
    )
    group = {
        "operators": "intruder-oid",
        "approvers": "intruder-oid",
        "productionEnvironments": "none",
        "MLBOT_PRODUCTION_ENVIRONMENTS": "none",
        "hookSecret": "known-to-the-intruder",
    }
    settings = _with_group(group)
    assert settings.operators == ("operator-oid",)
    assert settings.approvers == ("approver-oid",)
    assert settings.production_environments == ("prod",)
    assert settings.hook_secret.get_secret_value() == ""
    assert set(VARIABLE_GROUP_KEYS.values()) == LIVE_FIELDS


def test_the_variable_group_cannot_send_cards_over_plain_http() -> None:
    base = settings_from_mapping(
        {**BASE, "MLBOT_TEAMS_WEBHOOK_URL": "https://contoso.example/hook/1"}
    )
    merged = merge_variable_group(
        base, frozenset(), {"teamsWebhookUrl": "http://collector.example/hook"}, previous=base
    )
    assert merged.settings.teams_webhook_url.get_secret_value() == "https://contoso.example/hook/1"
    [problem] = merged.problems
    assert "https" in str(problem) and "collector.example" not in str(problem)


def test_the_webhook_url_must_be_https_except_to_this_machine() -> None:
    with pytest.raises(SettingsError, match="MLBOT_TEAMS_WEBHOOK_URL"):
        settings_from_mapping({"MLBOT_TEAMS_WEBHOOK_URL": "http://contoso.example/hook"})
    local = settings_from_mapping({"MLBOT_TEAMS_WEBHOOK_URL": "http://127.0.0.1:9/hook"})
    assert local.teams_webhook_url.get_secret_value() == "http://127.0.0.1:9/hook"
