"""MLBOT_AUTO_ROLLBACK_ENDPOINTS: which online endpoints a deployment's health watch reads."""

from __future__ import annotations

import pytest

from app import rollback_targets_from
from config.settings import SettingsError
from monitoring.rollback_targets import (
    EndpointTarget,
    RollbackTargetError,
    parse_target,
    parse_targets,
    targets_for,
)
from tests.conftest import make_settings

SUB = "00000000-1111-2222-3333-444444444444"
ARM = (
    f"/subscriptions/{SUB}/resourceGroups/rg-ml/providers/"
    "Microsoft.MachineLearningServices/workspaces/ws-prod/onlineEndpoints/churn"
)


def test_workspace_and_endpoint_use_the_default_subscription_and_group() -> None:
    target = parse_target("Prod=ws-prod/churn@green", SUB, "rg-ml")
    assert target == EndpointTarget("prod", ARM, "green")
    assert (target.endpoint, target.label) == ("churn", "churn@green")


def test_an_arm_id_names_everything_and_the_deployment_is_optional() -> None:
    target = parse_target(f"prod = {ARM}", "", "")
    assert target == EndpointTarget("prod", ARM, "")
    assert target.label == "churn"


@pytest.mark.parametrize(
    ("entry", "says"),
    [
        ("prod", "environment=workspace/endpoint"),
        ("=ws/churn", "environment=workspace/endpoint"),
        ("prod=churn", "workspace/endpoint"),
        ("prod=a/b/c", "workspace/endpoint"),
        ("prod=ws/churn@", "not a deployment name"),
        ("prod=/subscriptions/x/resourceGroups/y", "onlineEndpoints"),
        ("pr od=ws/churn", "not an environment name"),
    ],
)
def test_bad_entries_say_what_is_wrong(entry: str, says: str) -> None:
    with pytest.raises(RollbackTargetError, match=says):
        parse_target(entry, SUB, "rg-ml")


def test_a_short_form_needs_the_default_subscription() -> None:
    with pytest.raises(RollbackTargetError, match="MLBOT_AZURE_SUBSCRIPTION_ID"):
        parse_target("prod=ws-prod/churn", "", "")


def test_several_endpoints_per_environment_without_duplicates() -> None:
    targets = parse_targets(
        [
            "prod=ws-prod/churn@green",
            "prod=ws-prod/fraud",
            "staging=ws-stg/churn",
            "prod=ws-prod/fraud",
        ],
        SUB,
        "rg-ml",
    )
    assert [t.label for t in targets_for(targets, "PROD")] == ["churn@green", "fraud"]
    assert [t.label for t in targets_for(targets, "dev")] == []


def test_a_bad_setting_stops_start_up_naming_it() -> None:
    settings = make_settings(MLBOT_AUTO_ROLLBACK_ENDPOINTS="prod=churn")
    with pytest.raises(SettingsError, match="MLBOT_AUTO_ROLLBACK_ENDPOINTS"):
        rollback_targets_from(settings)


def test_entries_come_from_the_setting() -> None:
    settings = make_settings(MLBOT_AUTO_ROLLBACK_ENDPOINTS=f"prod={ARM}@blue")
    assert rollback_targets_from(settings) == (EndpointTarget("prod", ARM, "blue"),)
