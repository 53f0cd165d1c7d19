"""Azure DevOps service hook payloads -> mlbot events.

The fixtures follow the structure of the samples in Microsoft's "Service hooks events"
reference (field names, nesting and the null `pipeline` / `stage` / `run` / `resource` of
the approval samples), with our own names and values.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from service.devops_hooks import (
    APPROVAL_COMPLETED,
    APPROVAL_PENDING,
    BUILD_COMPLETE,
    RUN_STATE_CHANGED,
    STAGE_STATE_CHANGED,
    DevOpsEventKind,
    DevOpsHookEvent,
    environment_from_stage,
    event_key,
    is_deployment_pipeline,
    is_deployment_stage,
    parse_devops_hook,
)

ORG = "https://dev.azure.com/contoso-ml/plants"
RESULTS = f"{ORG}/_build/results?buildId=812"
CONTAINERS = {
    "collection": {"id": "11111111-aaaa-4bbb-8ccc-000000000001"},
    "account": {"id": "11111111-aaaa-4bbb-8ccc-000000000002"},
    "project": {"id": "11111111-aaaa-4bbb-8ccc-000000000003"},
}


def messages(text: str, link_label: str = "812", url: str = RESULTS) -> dict[str, Any]:
    # Azure DevOps sends the same sentence as text, html and markdown.
    return {
        "message": {
            "text": text,
            "html": text.replace(link_label, f'<a href="{url}">{link_label}</a>', 1),
            "markdown": text.replace(link_label, f"[{link_label}]({url})", 1),
        },
        "detailedMessage": {"text": text},
    }


def pipeline_ref(name: str = "deployment-pipeline", pipeline_id: int = 31) -> dict[str, Any]:
    return {
        "url": f"{ORG}/_apis/Pipelines/{pipeline_id}?revision=4",
        "id": pipeline_id,
        "revision": 4,
        "name": name,
        "folder": "\\",
    }


def run_state_event(
    *,
    pipeline: str = "deployment-pipeline",
    state: str = "completed",
    result: str | None = "succeeded",
    run_id: int = 812,
) -> dict[str, Any]:
    return {
        "subscriptionId": "5b0c6bde-0000-4000-8000-00000000a001",
        "notificationId": 17,
        "id": "9e1f3c55-0000-4000-8000-00000000b001",
        "eventType": RUN_STATE_CHANGED,
        "publisherId": "pipelines",
        **messages(f"Run {run_id} {result or state}."),
        "resource": {
            "run": {
                "_links": {
                    "self": {"href": f"{ORG}/_apis/Pipelines/31/runs/{run_id}"},
                    "web": {"href": f"{ORG}/_build/results?buildId={run_id}"},
                    "pipeline.web": {"href": f"{ORG}/_build/definition?definitionId=31"},
                },
                "pipeline": pipeline_ref(pipeline),
                "state": state,
                "result": result,
                "createdDate": "2026-11-29T11:02:41.117Z",
                "finishedDate": "2026-11-29T11:47:09.5031234Z" if state == "completed" else None,
                "url": f"{ORG}/_apis/Pipelines/31/runs/{run_id}",
                "id": run_id,
                "name": "20261129.4",
            },
            "pipeline": pipeline_ref(pipeline),
        },
        "resourceVersion": "5.1-preview.1",
        "resourceContainers": CONTAINERS,
        "createdDate": "2026-11-29T11:47:09.61Z",
    }


def stage_event(
    *,
    name: str = "Deploy_Prod",
    display_name: str | None = None,
    state: str = "completed",
    result: str | None = "succeeded",
    pipeline: str = "deployment-pipeline",
    event_id: str = "c0ffee00-0000-4000-8000-00000000c001",
) -> dict[str, Any]:
    return {
        "id": event_id,
        "eventType": STAGE_STATE_CHANGED,
        "publisherId": "pipelines",
        **messages(f"Run 20261129.4 stage {name} {result or state}.", link_label=name),
        "resource": {
            "stage": {
                "_links": {
                    "web": {"href": RESULTS},
                    "pipeline.web": {"href": f"{ORG}/_build/definition?definitionId=31"},
                },
                "id": "7d2e0c1a-0000-4000-8000-00000000d001",
                "name": name,
                "displayName": display_name,
                "state": state,
                "result": result,
            },
            "run": {
                "pipeline": pipeline_ref(pipeline),
                "state": "inProgress",
                "result": None,
                "createdDate": "2026-11-29T11:02:41.117Z",
                "finishedDate": None,
                "id": 812,
                "name": "20261129.4",
            },
            "pipeline": pipeline_ref(pipeline),
        },
        "resourceVersion": "5.1-preview.1",
        "resourceContainers": CONTAINERS,
        "createdDate": "2026-11-29T11:40:00.1Z",
    }


def approval_event(
    event_type: str = APPROVAL_PENDING,
    *,
    status: str = "pending",
    step_status: str = "pending",
    actual_approver: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Shaped like the documented sample: the approval is filled in, the rest is null."""
    verb = "pending" if event_type == APPROVAL_PENDING else "completed"
    text = f"Approval {verb} for deployment of pipeline 20261129.4 to environment prod."
    results = f"{RESULTS}&view=results"
    step: dict[str, Any] = {
        "assignedApprover": {"displayName": None, "id": "3a9e5f10-0000-4000-8000-00000000e001"},
        "status": step_status,
        "comment": "Offline AUC 0.91, latency fine." if step_status != "pending" else None,
        "initiatedOn": "2026-11-29T11:20:00.5Z",
    }
    if actual_approver is not None:
        step["actualApprover"] = actual_approver
    return {
        "id": "4f6a2b7c-0000-4000-8000-00000000f001",
        "eventType": event_type,
        "publisherId": "pipelines",
        "message": {
            "text": text,
            "html": text.replace(
                "20261129.4", f"<a href={results.replace('&', '&amp;')}> 20261129.4 </a>"
            ),
            # The documented markdown swaps label and target; the run is still findable.
            "markdown": text.replace("20261129.4", f"[{results}](20261129.4)"),
        },
        "detailedMessage": {"text": text},
        "resource": {
            "approval": {
                "id": "8b1d4e2f-0000-4000-8000-000000000a01",
                "steps": [step],
                "status": status,
                "createdOn": "2026-11-29T11:20:00.5Z",
                "lastModifiedOn": "2026-11-29T11:20:00.5Z",
                "instructions": "Compare offline metrics with the current prod model.",
                "minRequiredApprovers": 1,
                "blockedApprovers": [
                    {"displayName": None, "id": "3a9e5f10-0000-4000-8000-00000000e002"}
                ],
                "_links": {},
            },
            "projectId": "00000000-0000-0000-0000-000000000000",
            "pipeline": None,
            "stage": None,
            "run": None,
            "resource": None,
            "id": 0,
            "url": None,
            "stageName": None,
            "attemptId": 0,
        },
        "resourceVersion": "5.1-preview.1",
        "resourceContainers": CONTAINERS,
        "createdDate": "2026-11-29T11:20:00.6Z",
    }


def filled_approval_event() -> dict[str, Any]:
    """What a real YAML environment approval carries when the fields are filled in."""
    body = approval_event()
    body["resource"].update(
        {
            "pipeline": {"id": 31, "name": "deployment-pipeline"},
            "run": {
                "id": 812,
                "name": "20261129.4",
                "_links": {"web": {"href": RESULTS}},
            },
            "stage": {"id": "7d2e0c1a-0000-4000-8000-00000000d001", "name": "Deploy_Prod"},
            "stageName": "Deploy_Prod",
            "resource": {"type": "environment", "id": "3", "name": "prod-westeurope"},
        }
    )
    body["resource"]["approval"]["steps"][0]["assignedApprover"] = {
        "displayName": "ML Approvers",
        "uniqueName": "[plants]\\ML Approvers",
        "id": "3a9e5f10-0000-4000-8000-00000000e001",
    }
    return body


def build_complete_event(
    *, definition: str = "deployment-pipeline", result: str = "failed"
) -> dict[str, Any]:
    """The current build shape: `status` is a state, `result` the outcome."""
    return {
        "subscriptionId": "5b0c6bde-0000-4000-8000-00000000a002",
        "notificationId": 3,
        "id": "1d2c3b4a-0000-4000-8000-000000000b02",
        "eventType": BUILD_COMPLETE,
        "publisherId": "tfs",
        **messages(f"Build 20261129.4 {result}", link_label="20261129.4"),
        "resource": {
            "_links": {"web": {"href": f"{ORG}/_build/results?buildId=812"}},
            "id": 812,
            "buildNumber": "20261129.4",
            "status": "completed",
            "result": result,
            "queueTime": "2026-11-29T11:02:40.9Z",
            "startTime": "2026-11-29T11:02:41.117Z",
            "finishTime": "2026-11-29T11:47:09.503Z",
            "url": f"{ORG}/_apis/build/Builds/812",
            "definition": {"id": 31, "name": definition, "type": "build"},
            "requestedFor": {
                "displayName": "Ana Lima",
                "uniqueName": "ana.lima@contoso.example",
                "id": "3a9e5f10-0000-4000-8000-00000000e003",
            },
            "reason": "manual",
        },
        "resourceVersion": "2.0",
        "resourceContainers": CONTAINERS,
        "createdDate": "2026-11-29T11:47:10Z",
    }


def legacy_build_complete_event() -> dict[str, Any]:
    """The older documented shape: the result in `status`, the requester under `requests`."""
    return {
        "id": "1d2c3b4a-0000-4000-8000-000000000b03",
        "eventType": BUILD_COMPLETE,
        "publisherId": "tfs",
        "scope": "all",
        **messages(
            "Build Model.Deploy_20261129.2 succeeded",
            link_label="Model.Deploy_20261129.2",
            url=f"{ORG}/web/build.aspx?pcguid=abc&builduri=vstfs%3a%2f%2f%2fBuild%2fBuild%2f5",
        ),
        "resource": {
            "uri": "vstfs:///Build/Build/5",
            "id": 5,
            "buildNumber": "Model.Deploy_20261129.2",
            "url": f"{ORG}/_apis/build/Builds/5",
            "startTime": "2026-11-29T09:00:06.83Z",
            "finishTime": "2026-11-29T09:02:10.69Z",
            "reason": "manual",
            "status": "succeeded",
            "definition": {"id": 2, "name": "Model.Deploy", "definitionType": "xaml"},
            "requests": [
                {
                    "id": 1,
                    "requestedFor": {
                        "id": "3a9e5f10-0000-4000-8000-00000000e004",
                        "displayName": "Ben Ode",
                        "uniqueName": "ben.ode@contoso.example",
                    },
                }
            ],
        },
        "resourceVersion": "1.0",
        "resourceContainers": CONTAINERS,
        "createdDate": "2026-11-29T09:02:11Z",
    }


def parsed(body: dict[str, Any]) -> DevOpsHookEvent:
    event = parse_devops_hook(body)
    assert event is not None
    return event


# --- run state ---------------------------------------------------------------------------


def test_deployment_run_succeeded() -> None:
    event = parsed(run_state_event())
    assert event.kind is DevOpsEventKind.DEPLOYMENT_COMPLETED
    assert event.notifies
    assert (event.pipeline, event.pipeline_id) == ("deployment-pipeline", 31)
    assert (event.run_id, event.run_name) == (812, "20261129.4")
    assert (event.state, event.result) == ("completed", "succeeded")
    assert event.web_url == f"{ORG}/_build/results?buildId=812"
    assert event.event_id == "9e1f3c55-0000-4000-8000-00000000b001"
    assert event.message == "Run 812 succeeded."
    assert event.rollback is False
    assert event.environment is None  # a run has no single environment


@pytest.mark.parametrize("result", ["failed", "canceled"])
def test_deployment_run_failed_or_canceled(result: str) -> None:
    event = parsed(run_state_event(result=result))
    assert event.kind is DevOpsEventKind.DEPLOYMENT_FAILED
    assert event.result == result


def test_partially_succeeded_deployment_counts_as_completed() -> None:
    assert parsed(run_state_event(result="partiallySucceeded")).kind is (
        DevOpsEventKind.DEPLOYMENT_COMPLETED
    )


def test_deployment_run_started_is_not_announced() -> None:
    event = parsed(run_state_event(state="inProgress", result=None))
    assert event.kind is DevOpsEventKind.DEPLOYMENT_STARTED
    assert not event.notifies


def test_rollback_pipeline_is_a_deployment_marked_as_rollback() -> None:
    event = parsed(run_state_event(pipeline="rollback-pipeline"))
    assert event.kind is DevOpsEventKind.DEPLOYMENT_COMPLETED
    assert event.rollback is True


def test_training_pipeline_run_is_parsed_but_not_announced() -> None:
    done = parsed(run_state_event(pipeline="training-pipeline", result="failed"))
    assert done.kind is DevOpsEventKind.PIPELINE_RUN_COMPLETED
    assert not done.notifies
    running = parsed(run_state_event(pipeline="training-pipeline", state="inProgress"))
    assert running.kind is DevOpsEventKind.PIPELINE_RUN_STATE_CHANGED


def test_run_without_links_falls_back_to_the_message_link() -> None:
    body = run_state_event()
    del body["resource"]["run"]["_links"]
    assert parsed(body).web_url == RESULTS


def test_non_https_links_are_not_kept() -> None:
    body = run_state_event()
    body["resource"]["run"]["_links"]["web"]["href"] = "http://tfs.local/_build?buildId=812"
    for container in ("message", "detailedMessage"):
        body[container] = {"text": "Run 812 succeeded."}
    assert parsed(body).web_url is None


# --- stage state -------------------------------------------------------------------------


def test_deploy_stage_completed_names_the_environment() -> None:
    event = parsed(stage_event())
    assert event.kind is DevOpsEventKind.DEPLOYMENT_COMPLETED
    assert (event.stage, event.environment) == ("Deploy_Prod", "prod")
    assert (event.run_id, event.run_name) == (812, "20261129.4")
    assert event.pipeline == "deployment-pipeline"
    assert event.web_url == RESULTS


def test_deploy_stage_failed() -> None:
    event = parsed(stage_event(name="DeployStaging", result="failed"))
    assert event.kind is DevOpsEventKind.DEPLOYMENT_FAILED
    assert event.environment == "staging"


def test_stage_display_name_is_preferred_for_people() -> None:
    event = parsed(stage_event(name="deploy_prod", display_name="Deploy to production"))
    assert event.stage == "Deploy to production"
    assert event.environment == "prod"


def test_other_stages_are_not_deployments() -> None:
    event = parsed(stage_event(name="Build", result="failed"))
    assert event.kind is DevOpsEventKind.STAGE_STATE_CHANGED
    assert not event.notifies


def test_default_stage_of_the_documented_sample() -> None:
    # The documented sample's single stage is `__default` with a null display name.
    event = parsed(stage_event(name="__default", pipeline="TEST-CI"))
    assert event.kind is DevOpsEventKind.STAGE_STATE_CHANGED
    assert event.stage is None


def test_skipped_deploy_stage_is_not_announced() -> None:
    event = parsed(stage_event(result="skipped"))
    assert event.kind is DevOpsEventKind.DEPLOYMENT_STATE_CHANGED
    assert not event.notifies


def test_running_deploy_stage_is_a_start() -> None:
    assert parsed(stage_event(state="inProgress", result=None)).kind is (
        DevOpsEventKind.DEPLOYMENT_STARTED
    )


# --- approvals ---------------------------------------------------------------------------


def test_approval_pending_with_the_documented_nulls() -> None:
    event = parsed(approval_event())
    assert event.kind is DevOpsEventKind.APPROVAL_REQUIRED
    assert event.notifies
    assert event.approval_id == "8b1d4e2f-0000-4000-8000-000000000a01"
    assert event.approval_status == "pending"
    assert event.instructions == "Compare offline metrics with the current prod model."
    assert event.min_approvers == 1
    # pipeline, stage and run are null: what the message says is used instead.
    assert (event.pipeline, event.stage, event.run_name) == (None, None, None)
    assert event.run_id == 812
    assert event.web_url == f"{RESULTS}&view=results"
    assert event.environment == "prod"
    # The assigned approver has no display name: nobody is listed rather than a GUID.
    assert event.approvers == ()
    assert event.decided_by is None


def test_approval_pending_with_everything_filled_in() -> None:
    event = parsed(filled_approval_event())
    assert (event.pipeline, event.pipeline_id) == ("deployment-pipeline", 31)
    assert (event.run_id, event.run_name, event.stage) == (812, "20261129.4", "Deploy_Prod")
    assert event.environment == "prod-westeurope"  # the environment resource wins
    assert event.approvers == ("ML Approvers",)
    assert event.web_url == RESULTS


def test_approval_completed_with_the_documented_nulls() -> None:
    event = parsed(approval_event(APPROVAL_COMPLETED, status="approved", step_status="approved"))
    assert event.kind is DevOpsEventKind.APPROVAL_DECIDED
    assert event.approval_status == "approved"
    assert event.comment == "Offline AUC 0.91, latency fine."
    assert event.decided_by is None  # the sample names nobody
    assert event.environment == "prod"


def test_approval_completed_names_who_decided() -> None:
    body = approval_event(
        APPROVAL_COMPLETED,
        status="rejected",
        step_status="rejected",
        actual_approver={"displayName": "Ana Lima", "id": "3a9e5f10-0000-4000-8000-0000000e0005"},
    )
    event = parsed(body)
    assert (event.approval_status, event.decided_by) == ("rejected", "Ana Lima")


def test_approval_without_any_message_still_parses() -> None:
    body = approval_event()
    del body["message"], body["detailedMessage"]
    event = parsed(body)
    assert (event.run_id, event.web_url, event.environment) == (None, None, None)


# --- build.complete ----------------------------------------------------------------------


def test_build_complete_of_a_deployment_pipeline() -> None:
    event = parsed(build_complete_event())
    assert event.kind is DevOpsEventKind.DEPLOYMENT_FAILED
    assert (event.run_id, event.run_name) == (812, "20261129.4")
    assert (event.pipeline, event.pipeline_id) == ("deployment-pipeline", 31)
    assert (event.state, event.result) == ("completed", "failed")
    assert event.requested_for == "Ana Lima"
    assert event.web_url == f"{ORG}/_build/results?buildId=812"


def test_legacy_build_complete_with_result_in_status() -> None:
    event = parsed(legacy_build_complete_event())
    assert event.kind is DevOpsEventKind.DEPLOYMENT_COMPLETED
    assert (event.result, event.requested_for) == ("succeeded", "Ben Ode")
    # The results page of the build itself, from its REST URL, not the message's link.
    assert event.web_url == "https://dev.azure.com/contoso-ml/plants/_build/results?buildId=5"


def test_build_complete_of_another_pipeline_is_not_announced() -> None:
    event = parsed(build_complete_event(definition="training-pipeline", result="succeeded"))
    assert event.kind is DevOpsEventKind.PIPELINE_RUN_COMPLETED


# --- keys ----------------------------------------------------------------------------------


def test_keys_are_deterministic_and_distinguish_outcomes() -> None:
    assert event_key(parsed(run_state_event())) == event_key(parsed(run_state_event()))
    assert event_key(parsed(run_state_event())) != event_key(
        parsed(run_state_event(result="failed"))
    )
    pending = event_key(parsed(approval_event()))
    assert pending == "devops/approval/8b1d4e2f-0000-4000-8000-000000000a01/pending"
    decided = approval_event(APPROVAL_COMPLETED, status="approved", step_status="approved")
    assert event_key(parsed(decided)).endswith("/approved")


def test_build_complete_and_run_event_of_one_run_share_a_key() -> None:
    run = run_state_event(result="failed")
    build = build_complete_event(result="failed")
    assert event_key(parsed(run)) == event_key(parsed(build))


def test_stage_keys_follow_the_notification() -> None:
    first = stage_event()
    again = copy.deepcopy(first)
    retried_stage = stage_event(event_id="c0ffee00-0000-4000-8000-00000000c002")
    assert event_key(parsed(first)) == event_key(parsed(again))
    assert event_key(parsed(first)) != event_key(parsed(retried_stage))
    assert "/stage/deploy_prod/" in event_key(parsed(first))


def test_keys_stay_within_the_column() -> None:
    body = stage_event(name="Deploy_" + "x" * 2000)
    assert len(event_key(parsed(body))) <= 512


# --- classification helpers -------------------------------------------------------------


@pytest.mark.parametrize(
    ("stage", "environment"),
    [
        ("Deploy_Prod", "prod"),
        ("deploy-to-staging", "staging"),
        ("DeployToProd", "prod"),
        ("DeployProd", "prod"),
        ("Release uat", "uat"),
        ("Rollback_Prod", "prod"),
        ("Prod", "prod"),
        ("Deploy", None),
        ("Build", None),
        ("DeployTokyo", "tokyo"),
        (None, None),
    ],
)
def test_environment_from_stage(stage: str | None, environment: str | None) -> None:
    assert environment_from_stage(stage) == environment


def test_deployment_rules() -> None:
    assert is_deployment_stage("Deploy_Prod") and is_deployment_stage("rollback")
    assert not is_deployment_stage("Build") and not is_deployment_stage("Undeploy")
    assert not is_deployment_stage(None)
    assert is_deployment_pipeline("deployment-pipeline")
    assert is_deployment_pipeline("rollback-pipeline")
    assert is_deployment_pipeline("Model.Deploy")
    assert not is_deployment_pipeline("training-pipeline")
    assert not is_deployment_pipeline(None)


# --- unknown and malformed ---------------------------------------------------------------


@pytest.mark.parametrize(
    "event_type",
    [
        "git.push",
        "ms.vss-release.deployment-completed-event",
        "ms.vss-pipelines.job-state-changed-event",
    ],
)
def test_unknown_event_types_are_none(event_type: str) -> None:
    assert parse_devops_hook({"eventType": event_type, "resource": {}}) is None


def _without(body: dict[str, Any], *path: str) -> dict[str, Any]:
    body = copy.deepcopy(body)
    target = body
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = None
    return body


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ([], "not a JSON object"),
        ("build.complete", "not a JSON object"),
        ({}, "no eventType"),
        ({"eventType": 7}, "no eventType"),
        ({"eventType": "  "}, "no eventType"),
    ],
)
def test_malformed_bodies_are_refused(body: Any, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_devops_hook(body)


# "Resource details to send: Minimal / None": accepted (a 400 would put the subscription
# on probation), marked partial, completed from Azure DevOps before it is classified.
@pytest.mark.parametrize(
    "body",
    [
        _without(run_state_event(), "resource"),
        _without(run_state_event(), "resource", "run"),
        _without(run_state_event(), "resource", "run", "state"),
        _without(stage_event(), "resource", "stage"),
        _without(stage_event(), "resource", "stage", "state"),
        _without(approval_event(), "resource", "approval"),
        _without(approval_event(), "resource", "approval", "id"),
        _without(
            approval_event(APPROVAL_COMPLETED, status="approved"), "resource", "approval", "status"
        ),
        _without(_without(build_complete_event(), "resource", "result"), "resource", "status"),
    ],
)
def test_deliveries_without_resource_details_are_accepted_as_partial(body: Any) -> None:
    event = parse_devops_hook(body)
    assert event is not None and event.partial
    if event.event_type not in (APPROVAL_PENDING, APPROVAL_COMPLETED):
        # What the run did is not known yet: nothing is announced from the hook alone.
        assert not event.notifies


@pytest.mark.parametrize(
    "body",
    [
        _without(run_state_event(), "resource", "run", "id"),
        _without(build_complete_event(), "resource", "id"),
    ],
)
def test_a_run_without_its_id_is_read_from_the_message_link(body: Any) -> None:
    event = parse_devops_hook(body)
    assert event is not None and event.run_id == 812 and not event.partial


def test_pending_approval_without_status_is_read_as_pending() -> None:
    body = _without(approval_event(), "resource", "approval", "status")
    assert parsed(body).approval_status == "pending"


def test_payload_is_json_ready() -> None:
    payload = parsed(filled_approval_event()).payload()
    assert payload["kind"] == "approval_required"
    assert payload["approvers"] == ["ML Approvers"]
    assert json.loads(json.dumps(payload)) == payload
