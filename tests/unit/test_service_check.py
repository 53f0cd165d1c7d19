"""`mlbot check`'s verdicts and table, with in-memory service doubles (pure logic)."""

from __future__ import annotations

from typing import Any

from domain.jobs import JobState, TrainingJob, Workspace
from monitoring.azure_calls import AzureAuthError, AzureNotFoundError
from monitoring.service_check import (
    CheckResult,
    Verdict,
    all_passed,
    check_azureml,
    check_devops,
    render_check_table,
)

WS = Workspace("sub", "rg", "ws1")


class Jobs:
    def __init__(self, error: Exception | None = None) -> None:
        self.error = error

    async def list_active(self, workspace: Workspace) -> list[TrainingJob]:
        if self.error:
            raise self.error
        job = TrainingJob(workspace.key, "j", "j", "e", "P/C", "Running", JobState.RUNNING)
        return [job, TrainingJob(workspace.key, "k", "k", "e", None, "Running", JobState.RUNNING)]


class Pipelines:
    def __init__(self, missing: set[str] | None = None, project_error: Exception | None = None):
        self.missing = missing or set()
        self.project_error = project_error

    async def list_pending_approvals(self) -> list[Any]:
        if self.project_error:
            raise self.project_error
        return [object()]

    async def find_pipeline(self, name: str) -> Any:
        if name in self.missing:
            raise AzureNotFoundError("Azure DevOps", "find pipeline", f"no pipeline named {name}")
        return type("Ref", (), {"id": 7})()

    async def get_variable_group(self, name: str) -> dict[str, str]:
        return {"monitoringPollIntervalSeconds": "30"}


PIPES = [
    ("training-pipeline", "MLBOT_TRAINING_PIPELINE"),
    ("rollback-pipeline", "MLBOT_ROLLBACK_PIPELINE"),
]


async def test_all_good() -> None:
    results = await check_azureml(Jobs(), [WS])
    results += await check_devops(
        Pipelines(), project="mlops", pipeline_names=PIPES, variable_group="mlops-pipeline-settings"
    )
    assert [r.verdict for r in results] == [Verdict.OK] * 5
    assert results[0].detail == "2 job(s) visible, 1 with a circuit tag"
    table = render_check_table(results)
    assert table.endswith("all good") and "pipeline rollback-pipeline" in table


async def test_auth_failure_names_the_setting() -> None:
    error = AzureAuthError("Azure ML", "list jobs", "401 Unauthorized", "AZURE_CLIENT_SECRET")
    [result] = await check_azureml(Jobs(error), [WS])
    assert result.verdict is Verdict.FAIL and result.fix == "check AZURE_CLIENT_SECRET"


async def test_wrong_project_stops_early_with_a_clear_fix() -> None:
    error = AzureNotFoundError("Azure DevOps", "list approvals", "project 'nope' does not exist")
    results = await check_devops(
        Pipelines(project_error=error), project="nope", pipeline_names=PIPES, variable_group="g"
    )
    assert len(results) == 1
    assert results[0].verdict is Verdict.FAIL
    assert "MLBOT_DEVOPS_PROJECT" in results[0].fix
    table = render_check_table(results)
    assert "project 'nope' does not exist" in table and table.endswith("1 check(s) failed")


async def test_missing_pipeline_points_at_its_setting() -> None:
    results = await check_devops(
        Pipelines(missing={"rollback-pipeline"}),
        project="p",
        pipeline_names=PIPES,
        variable_group="g",
    )
    failed = [r for r in results if r.verdict is Verdict.FAIL]
    assert [r.target for r in failed] == ["pipeline rollback-pipeline"]
    assert failed[0].fix == "check MLBOT_ROLLBACK_PIPELINE"
    assert not all_passed(results)


async def test_unconfigured_services_are_skipped_not_failed() -> None:
    results = await check_azureml(None, [])
    results += await check_devops(None, project="", pipeline_names=PIPES, variable_group="g")
    assert {r.verdict for r in results} == {Verdict.SKIP}
    assert all_passed([*results, CheckResult("x", "y", Verdict.OK, "fine")])
