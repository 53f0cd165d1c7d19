"""Azure DevOps runs, builds, approvals and variable groups of a YAML pipeline, as Microsoft
documents them, through azure-devops and mlbot's adapter.

Sources (MicrosoftDocs/vsts-rest-api-specs unless named):
- `specification/distributedTask/7.1/httpExamples/variablegroups/GET_VariableGroupsByGroupName.json`
  at c0155ba2a0a5eb4d24ba2b164969d72337db6ed6 -> examples/vsts_variablegroups_by_name_7.1.json
  (a secret variable comes as `{"value": null, "isSecret": true}`);
- the 7.1 schemas at adb28786a3e9349d5b3deb43eb2134b682c33bb2: `Run`, `RunPipelineParameters`,
  `Pipeline` (`specification/pipelines/7.1/pipelines.json`), `Build`, `TimelineRecord`
  (`specification/build/7.1/build.json`), `VariableGroup`, `VariableValue`
  (`specification/distributedTask/7.1/taskAgent.json`), `Approval`, `ApprovalStep`
  (`specification/approvalsAndChecks/7.1/pipelinesapproval.json`), `CheckSuite`, `CheckRun`,
  `CheckConfigurationRef`, `Resource` (`specification/approvalsAndChecks/7.1/
  pipelinesChecks.json`), `EnvironmentInstance` (`taskAgent.json`)
  -> examples/vsts_schemas_7.1.json (those definitions, verbatim). The specs publish no
  example of a run or a build;
- `specification/approvalsAndChecks/7.0/httpExamples/approvals/GET__QueryApproval.json` at
  05d0a6942e8a190ab6d608962b2664e735a56f5c -> examples/vsts_approvals_query_7.0.json;
- a run as Azure DevOps serializes it: `resource.run` of the "Run state changed" sample,
  MicrosoftDocs/azure-devops-docs `docs/service-hooks/events.md` at
  09dc63ed0e56c9e324f697fd41998b4f2f6e9675 -> examples/devops_hook_run_state_changed.json.

Published bodies are served unchanged by the emulator (`answer_with`) to the real SDK.
"""

from __future__ import annotations

import os
import tempfile

os.environ.setdefault("AZURE_DEVOPS_CACHE_DIR", tempfile.mkdtemp(prefix="mlbot-ado-cache-"))

import base64
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from monitoring.azure_calls import RetryPolicy
from monitoring.devops import AzureDevOpsPipelines, run_state_of_build
from sandbox.devops_emulator import DevOpsEmulator

EXAMPLES = Path(__file__).parent / "examples"
PAT = "published-pat"


def _example(name: str) -> Any:
    return json.loads((EXAMPLES / name).read_text())


SCHEMAS = _example("vsts_schemas_7.1.json")


def documented(spec: str, name: str) -> dict[str, Any]:
    """A definition's properties, with those of the definitions it is `allOf`."""
    definitions = SCHEMAS[f"specification/{spec}"]
    definition = definitions[name]
    properties = dict(definition.get("properties", {}))
    for parent in definition.get("allOf", []):
        properties |= documented(spec, parent["$ref"].rsplit("/", 1)[-1])
    return properties


def enum_of(spec: str, name: str, field: str) -> set[str]:
    return set(documented(spec, name)[field]["enum"])


@pytest.fixture
async def emulator() -> AsyncIterator[DevOpsEmulator]:
    emu = DevOpsEmulator(organization="fabrikam", project="DGDemo", pat=PAT, pipelines=())
    emu.add_pipeline("deployment-pipeline", parameters=("environment", "reason"))
    await emu.start()
    yield emu
    await emu.stop()


def _adapter(emulator: DevOpsEmulator) -> AzureDevOpsPipelines:
    return AzureDevOpsPipelines(
        emulator.org_url, "DGDemo", pat=PAT, policy=RetryPolicy(attempts=1, timeout_s=10.0)
    )


# --- variable groups ------------------------------------------------------------------


async def test_the_published_variable_groups_with_a_secret(emulator: DevOpsEmulator) -> None:
    published = _example("vsts_variablegroups_by_name_7.1.json")["responses"]["200"]["body"]
    emulator.answer_with("GET", r"/DGDemo/_apis/distributedtask/variablegroups", published)
    adapter = _adapter(emulator)

    first = await adapter.get_variable_group("TestVariableGroup1")
    # Names compare without case, as Azure DevOps compares them.
    second = await adapter.get_variable_group("testvariablegroup2")

    # `key2` is secret: its value never comes back, and mlbot does not invent one.
    assert first == {"key1": "value1"}
    assert second == {"key1": "value1"}
    (lookup, _) = emulator.requests_to("/_apis/distributedtask/variablegroups", "GET")
    assert lookup.query["groupName"] == "TestVariableGroup1"


async def test_the_emulated_variable_group_is_documented(emulator: DevOpsEmulator) -> None:
    emulator.set_variables(
        "mlops-pipeline-settings",
        {"monitoringPollIntervalSeconds": "30", "teamsWebhookUrl": "https://hook"},
        secrets=frozenset({"teamsWebhookUrl"}),
    )
    (group,) = (
        await _get(emulator, "/DGDemo/_apis/distributedtask/variablegroups", groupName="mlops*")
    )["value"]

    assert set(group) <= set(documented("distributedTask/7.1/taskAgent.json", "VariableGroup"))
    value_fields = set(documented("distributedTask/7.1/taskAgent.json", "VariableValue"))
    assert all(set(v) <= value_fields for v in group["variables"].values())
    # The published secret: no value, flagged.
    assert group["variables"]["teamsWebhookUrl"] == {"isSecret": True, "value": None}
    assert await _adapter(emulator).get_variable_group("MLOPS-pipeline-settings") == {
        "monitoringPollIntervalSeconds": "30"
    }


# --- runs of a YAML pipeline ----------------------------------------------------------


async def test_a_run_in_its_published_form(emulator: DevOpsEmulator) -> None:
    run = _example("devops_hook_run_state_changed.json")["resource"]["run"]
    emulator.answer_with("GET", r"/DGDemo/_apis/pipelines/1/runs/11", run)

    found = await _adapter(emulator).get_run(1, 11)

    assert (found.run_id, found.name, found.pipeline_name) == (11, "11", "TEST-CI")
    # The sample's pipeline reference says "id": 11 beside its url to pipeline 1.
    assert found.pipeline_id == 1
    assert (found.state, found.result) == ("completed", "succeeded") and found.succeeded
    assert found.web_url == (
        "https://codedev.ms/org/863d0a5b-3c91-4bf3-8ad7-7f33736b7f4c/_build/results?buildId=11"
    )
    moment = datetime(2019, 12, 13, 4, 46, 13, 613000, tzinfo=UTC)
    assert found.created_at == moment and found.finished_at == moment
    assert set(run) <= set(documented("pipelines/7.1/pipelines.json", "Run"))


async def test_run_pipeline_sends_documented_template_parameters(
    emulator: DevOpsEmulator,
) -> None:
    run = await _adapter(emulator).queue_run(
        "deployment-pipeline", {"environment": "prod", "reason": "error rate 7.2 % > 5 %"}
    )

    (post,) = emulator.requests_to("/_apis/pipelines/1/runs", "POST")
    allowed = documented("pipelines/7.1/pipelines.json", "RunPipelineParameters")
    assert set(post.body) <= set(allowed)
    # `templateParameters` is documented as a map of strings.
    assert allowed["templateParameters"]["additionalProperties"] == {"type": "string"}
    assert post.body["templateParameters"] == {
        "environment": "prod",
        "reason": "error rate 7.2 % > 5 %",
    }
    assert run.template_parameters == post.body["templateParameters"]
    assert (run.pipeline_id, run.pipeline_name, run.state) == (
        1,
        "deployment-pipeline",
        "inProgress",
    )


async def test_the_emulated_runs_are_documented(emulator: DevOpsEmulator) -> None:
    queued = emulator.queue_run("deployment-pipeline", {"environment": "prod", "reason": "r"})
    done = emulator.queue_run("deployment-pipeline", {"environment": "dev", "reason": "r"})
    emulator.complete_run(done.id, "failed")

    run_fields = set(documented("pipelines/7.1/pipelines.json", "Run"))
    states = enum_of("pipelines/7.1/pipelines.json", "Run", "state")
    results = enum_of("pipelines/7.1/pipelines.json", "Run", "result")
    for run_id in (queued.id, done.id):
        run = await _get(emulator, f"/DGDemo/_apis/pipelines/1/runs/{run_id}")
        assert set(run) <= run_fields
        assert run["state"] in states and run.get("result", "unknown") in results
        assert set(run["pipeline"]) <= set(
            documented("pipelines/7.1/pipelines.json", "PipelineReference")
        )
    pipeline = await _get(emulator, "/DGDemo/_apis/pipelines/1")
    assert set(pipeline) <= set(documented("pipelines/7.1/pipelines.json", "Pipeline"))


# --- builds (a YAML pipeline's run is a build) ----------------------------------------


async def test_the_emulated_builds_and_timelines_are_documented(
    emulator: DevOpsEmulator,
) -> None:
    running = emulator.queue_run("deployment-pipeline", {"environment": "prod", "reason": "r"})
    emulator.add_approval(running.id, stage="Deploy_Prod", environment="prod")
    done = emulator.queue_run("deployment-pipeline", {"environment": "dev", "reason": "r"})
    emulator.complete_run(done.id, "canceled")

    build_fields = set(documented("build/7.1/build.json", "Build"))
    statuses = enum_of("build/7.1/build.json", "Build", "status")
    results = enum_of("build/7.1/build.json", "Build", "result")
    record_fields = set(documented("build/7.1/build.json", "TimelineRecord"))
    record_states = enum_of("build/7.1/build.json", "TimelineRecord", "state")
    for run_id in (running.id, done.id):
        build = await _get(emulator, f"/DGDemo/_apis/build/builds/{run_id}")
        assert set(build) <= build_fields
        assert build["status"] in statuses and build.get("result", "none") in results
        timeline = await _get(emulator, f"/DGDemo/_apis/build/builds/{run_id}/timeline")
        for record in timeline["records"]:
            assert set(record) <= record_fields, record["type"]
            assert record["state"] in record_states, record["type"]


async def test_builds_get_reads_a_build_in_its_documented_words(
    emulator: DevOpsEmulator,
) -> None:
    running = emulator.queue_run("deployment-pipeline", {"environment": "prod", "reason": "r"})

    found = await _adapter(emulator).get_build(running.id)

    assert (found.pipeline_id, found.pipeline_name, found.state) == (
        1,
        "deployment-pipeline",
        "inProgress",
    )
    # Every documented build status has its Runs-API meaning.
    assert {
        status: run_state_of_build(status)
        for status in enum_of("build/7.1/build.json", "Build", "status")
    } == {
        "none": "unknown",
        "inProgress": "inProgress",
        "completed": "completed",
        "cancelling": "canceling",
        "postponed": "inProgress",
        "notStarted": "inProgress",
        "all": "unknown",
    }


def _basic(password: str) -> str:
    return "Basic " + base64.b64encode(f":{password}".encode()).decode()


async def _get(emulator: DevOpsEmulator, path: str, **params: str) -> Any:
    query = {"api-version": "7.1", **params}
    async with (
        aiohttp.ClientSession(headers={"Authorization": _basic(PAT)}) as http,
        http.get(f"{emulator.org_url}{path}", params=query) as answer,
    ):
        assert answer.status == 200, await answer.text()
        return await answer.json()


# --- approvals: where the published ones wait -----------------------------------------

PUBLISHED_PENDING = "ee14f612-6838-43c0-b445-db238ef14153"  # vsts_approvals_query_7.0.json
UNPLACED = "06239b11-a904-43a1-be6a-0d44026bd121"


async def test_published_pending_approvals_get_stage_and_environment_from_their_run(
    emulator: DevOpsEmulator,
) -> None:
    # The documented approval names no run: the run's timeline and check suite do.
    run = emulator.queue_run("deployment-pipeline", {"environment": "prod", "reason": "r"})
    approval = emulator.add_approval(run.id, stage="Deploy_Prod", environment="prod")
    emulator.approvals.pop(approval.id)
    approval.id = PUBLISHED_PENDING
    emulator.approvals[approval.id] = approval
    emulator.answer_with(
        "GET", r"/DGDemo/_apis/pipelines/approvals", _example("vsts_approvals_query_7.0.json")
    )

    approvals = {a.id: a for a in await _adapter(emulator).list_pending_approvals()}

    placed = approvals[PUBLISHED_PENDING]
    assert (placed.run_id, placed.pipeline_id, placed.pipeline_name) == (
        run.id,
        1,
        "deployment-pipeline",
    )
    assert placed.stage == "Deploy_Prod" and placed.environment == "prod"
    # The other published approval waits in no run mlbot can see: nothing is invented.
    unplaced = approvals[UNPLACED]
    assert unplaced.run_id is None and unplaced.environment is None and unplaced.stage == ""


async def test_the_emulated_approvals_are_documented(emulator: DevOpsEmulator) -> None:
    run = emulator.queue_run("deployment-pipeline", {"environment": "prod", "reason": "r"})
    emulator.add_approval(run.id, approvers=("Release Approvers",), environment="prod")

    body = await _get(
        emulator, "/DGDemo/_apis/pipelines/approvals", state="pending", **{"$expand": "steps"}
    )

    spec = "approvalsAndChecks/7.1/pipelinesapproval.json"
    (approval,) = body["value"]
    assert set(approval) <= set(documented(spec, "Approval"))
    assert approval["steps"] and all(
        set(step) <= set(documented(spec, "ApprovalStep")) for step in approval["steps"]
    )


async def test_the_emulated_check_suites_and_environments_are_documented(
    emulator: DevOpsEmulator,
) -> None:
    run = emulator.queue_run("deployment-pipeline", {"environment": "prod", "reason": "r"})
    approval = emulator.add_approval(run.id, stage="Deploy_Prod", environment="prod")

    suite = await _get(
        emulator,
        f"/DGDemo/_apis/pipelines/checks/runs/{approval.check_suite_id}",
        **{"$expand": "resources"},
    )
    environment = await _get(
        emulator, f"/DGDemo/_apis/distributedtask/environments/{emulator.environment_id('prod')}"
    )

    checks = "approvalsAndChecks/7.1/pipelinesChecks.json"
    assert set(suite) <= set(documented(checks, "CheckSuite"))
    assert suite["status"] in enum_of(checks, "CheckRunResult", "status")
    (check_run,) = suite["checkRuns"]
    assert set(check_run) <= set(documented(checks, "CheckRun"))
    reference = check_run["checkConfigurationRef"]
    assert set(reference) <= set(documented(checks, "CheckConfigurationRef"))
    assert reference["resource"] == {"type": "environment", "id": "1", "name": "prod"}
    assert set(reference["resource"]) <= set(documented(checks, "Resource"))
    assert set(environment) <= set(
        documented("distributedTask/7.1/taskAgent.json", "EnvironmentInstance")
    )
