"""The sandbox's Azure DevOps service hooks are what mlbot's hook endpoint understands."""

from __future__ import annotations

import datetime as dt

import pytest

from sandbox.scenario import HEALTHY_TRAFFIC, ScenarioError, TrafficSpec, scenario_from_dict
from sandbox.service_hooks import StageFinished, stage_finished_body, stage_name
from service.devops_hooks import DevOpsEventKind, event_key, parse_devops_hook

FINISHED = dt.datetime(2026, 11, 29, 8, 1, 5, tzinfo=dt.UTC)


def _stage(pipeline: str, stage: str, result: str = "succeeded") -> StageFinished:
    return StageFinished(
        org_url="http://127.0.0.1:1234/contoso",
        project="mlops",
        pipeline_id=2,
        pipeline_name=pipeline,
        run_id=17,
        run_name="20261129.1",
        stage=stage,
        result=result,
        finished=FINISHED,
    )


def test_stage_names_carry_the_environment() -> None:
    assert stage_name("Deploy", "prod") == "Deploy_Prod"
    assert stage_name("Rollback", "staging") == "Rollback_Staging"


def test_a_finished_deployment_stage_is_a_completed_deployment_to_its_environment() -> None:
    event = parse_devops_hook(
        stage_finished_body(_stage("deployment-pipeline", "Deploy_Prod"), "n-1")
    )
    assert event is not None
    assert event.kind is DevOpsEventKind.DEPLOYMENT_COMPLETED
    assert (event.environment, event.run_id, event.rollback) == ("prod", 17, False)
    assert event.pipeline == "deployment-pipeline"


def test_a_rollback_stage_is_marked_as_a_rollback_and_a_failure_as_failed() -> None:
    rollback = parse_devops_hook(
        stage_finished_body(_stage("rollback-pipeline", "Rollback_Prod"), "n-2")
    )
    failed = parse_devops_hook(
        stage_finished_body(_stage("deployment-pipeline", "Deploy_Prod", "failed"), "n-3")
    )
    assert rollback is not None and rollback.rollback
    assert failed is not None and failed.kind is DevOpsEventKind.DEPLOYMENT_FAILED


def test_a_redelivery_is_recognised_by_its_notification_id() -> None:
    body = stage_finished_body(_stage("deployment-pipeline", "Deploy_Prod"), "n-4")
    first, again = parse_devops_hook(body), parse_devops_hook(dict(body))
    assert first is not None and again is not None
    assert event_key(first) == event_key(again)


BASE = {"name": "s", "workspaces": [{"name": "ws", "circuits": ["P1/C1"]}]}


def test_scenario_endpoints_default_to_healthy_traffic() -> None:
    scenario = scenario_from_dict(
        {**BASE, "endpoints": [{"environment": "Prod", "name": "models"}]}
    )
    (endpoint,) = scenario.endpoints
    assert (endpoint.environment, endpoint.workspace, endpoint.deployment) == ("prod", "ws", "blue")
    assert endpoint.deploy_after_s is None and endpoint.traffic == HEALTHY_TRAFFIC


def test_scenario_traffic_phases() -> None:
    scenario = scenario_from_dict(
        {
            **BASE,
            "endpoints": [
                {
                    "environment": "prod",
                    "name": "models",
                    "deploy_after_s": 5,
                    "traffic": [{"minutes": 3}, {"error_percent": 12, "latency_p95_ms": 2600}],
                }
            ],
        }
    )
    assert scenario.endpoints[0].traffic == (
        TrafficSpec(minutes=3),
        TrafficSpec(error_percent=12, latency_p95_ms=2600),
    )


@pytest.mark.parametrize(
    ("endpoint", "field"),
    [
        ({"name": "models"}, "endpoints[0].environment"),
        ({"environment": "prod", "name": "models", "workspace": "nope"}, "endpoints[0].workspace"),
        (
            {"environment": "prod", "name": "m", "traffic": [{}, {}]},
            "endpoints[0].traffic[0].minutes",
        ),
        (
            {"environment": "prod", "name": "m", "traffic": [{"error_percent": 120}]},
            "endpoints[0].traffic[0].error_percent",
        ),
        ({"environment": "prod", "name": "m", "speed": 1}, "endpoints[0].speed"),
    ],
)
def test_scenario_endpoint_errors_name_the_field(endpoint: dict[str, object], field: str) -> None:
    with pytest.raises(ScenarioError) as raised:
        scenario_from_dict({**BASE, "endpoints": [endpoint]})
    assert raised.value.field == field
