"""`mlbot check` names what to fix from the error bodies Azure and Azure DevOps send.

The bodies are the services' documented error shapes, served by the sandbox's emulators
to the real adapters (azure-ai-ml through ARM, azure-devops):
- ARM's `{"error": {"code", "message"}}` (Azure/azure-rest-api-specs common-types
  `ErrorResponse`) with the codes ARM documents for these cases: `AuthorizationFailed`
  (403, naming the action), `InvalidAuthenticationToken` (401), `ResourceNotFound` (404);
- Azure DevOps' serialized exception (`message`, `typeKey`): `TF400813 …
  UnauthorizedRequestException` (401) for a valid token without the scope a call needs,
  the plain-text "Access Denied: The Personal Access Token used has expired." (401), and
  no build definition of the name (Definitions - List answers an empty list).
"""

from __future__ import annotations

from datetime import UTC, datetime

from monitoring.service_check import CheckResult, Verdict, check_azureml, check_devops
from tests.contract.sandbox_world import SandboxWorld, WorldFactory

START = datetime(2026, 11, 29, 6, 0, tzinfo=UTC)
SCENARIO = """
name: check
subscription_id: 00000000-0000-0000-0000-0000000000c4
resource_group: rg-check
experiment: circuit-training
workspaces:
  - name: mlw-check
    circuits: [PLANT001/CIRCUIT01]
"""
PIPELINES = [("training-pipeline", "MLBOT_TRAINING_PIPELINE")]


async def _devops(world: SandboxWorld, names: list[tuple[str, str]] = PIPELINES) -> CheckResult:
    results = await check_devops(
        world.pipelines,
        project=world.stack.endpoints.devops_project,
        pipeline_names=names,
        variable_group="mlops-pipeline-settings",
    )
    failed = [r for r in results if r.verdict is Verdict.FAIL]
    assert failed
    return failed[0]  # the first failure: the rows after it are about other things


async def _azureml(world: SandboxWorld) -> CheckResult:
    [result] = await check_azureml(world.source, world.stack.endpoints.workspaces)
    assert result.verdict is Verdict.FAIL
    return result


async def test_a_token_without_the_needed_scope_is_told_which_scopes(
    make_world: WorldFactory,
) -> None:
    world = await make_world(SCENARIO, START)
    world.stack.devops.inject_fault("missing_scope", count=5, path_contains="/approvals")

    failed = await _devops(world)

    assert "TF400813" in failed.detail
    assert "Build (Read & execute)" in failed.fix and "MLBOT_DEVOPS_PAT" in failed.fix


async def test_an_expired_token_is_told_to_be_renewed(make_world: WorldFactory) -> None:
    world = await make_world(SCENARIO, START)
    world.stack.devops.inject_fault("unauthorized", count=5, path_contains="/approvals")

    failed = await _devops(world)

    assert "expired" in failed.fix and "MLBOT_DEVOPS_PAT" in failed.fix


async def test_a_missing_pipeline_names_its_setting(make_world: WorldFactory) -> None:
    world = await make_world(SCENARIO, START)

    failed = await _devops(world, [("no-such-pipeline", "MLBOT_TRAINING_PIPELINE")])

    assert "no-such-pipeline" in failed.detail
    assert failed.fix == "check MLBOT_TRAINING_PIPELINE"


async def test_a_missing_role_names_the_action(make_world: WorldFactory) -> None:
    world = await make_world(SCENARIO, START)
    world.stack.azureml.inject("forbidden", count=5)

    failed = await _azureml(world)

    assert "AuthorizationFailed" in failed.detail
    assert failed.fix.startswith("give the identity a role that allows Microsoft.")


async def test_a_refused_token_names_the_credential_settings(make_world: WorldFactory) -> None:
    world = await make_world(SCENARIO, START)
    world.stack.azureml.inject("unauthorized", count=5)

    failed = await _azureml(world)

    assert "InvalidAuthenticationToken" in failed.detail
    assert "AZURE_CLIENT_ID" in failed.fix


async def test_a_missing_workspace_names_the_workspace_setting(make_world: WorldFactory) -> None:
    world = await make_world(SCENARIO, START)
    world.stack.azureml.inject("not_found", count=5)

    failed = await _azureml(world)

    assert "MLBOT_AZUREML_WORKSPACES" in failed.fix
