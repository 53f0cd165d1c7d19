"""`mlbot check`: reach every configured service and say what works and what to fix."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from domain.jobs import TrainingJob, Workspace
from monitoring.azure_calls import AzureAuthError, AzureCallError, AzureNotFoundError
from monitoring.error_advice import what_to_fix


class Verdict(StrEnum):
    OK = "ok"
    FAIL = "FAIL"
    SKIP = "skip"


@dataclass(frozen=True, slots=True)
class CheckResult:
    area: str
    target: str
    verdict: Verdict
    detail: str
    fix: str = ""


class ListsJobs(Protocol):
    async def list_active(self, workspace: Workspace) -> list[TrainingJob]: ...


class ReadsPipelines(Protocol):
    async def find_pipeline(self, name: str) -> Any: ...

    async def get_variable_group(self, name: str) -> dict[str, str]: ...

    async def list_pending_approvals(self) -> list[Any]: ...


def _failure(area: str, target: str, exc: AzureCallError, default_fix: str) -> CheckResult:
    advice = what_to_fix(exc)
    if advice is not None:
        fix = advice
    elif isinstance(exc, AzureAuthError):
        fix = f"check {exc.setting}"
    elif isinstance(exc, AzureNotFoundError):
        fix = default_fix
    else:
        fix = "check the service is reachable from here, then retry"
    return CheckResult(area, target, Verdict.FAIL, exc.message, fix)


async def _guarded(
    area: str,
    target: str,
    probe: Callable[[], Awaitable[str]],
    fix: str,
) -> CheckResult:
    try:
        detail = await probe()
    except AzureCallError as exc:
        return _failure(area, target, exc, fix)
    except Exception as exc:  # an unexpected failure is still a row, never a crash
        return CheckResult(area, target, Verdict.FAIL, f"{type(exc).__name__}: {exc}", fix)
    return CheckResult(area, target, Verdict.OK, detail)


async def check_azureml(source: ListsJobs | None, workspaces: list[Workspace]) -> list[CheckResult]:
    if source is None or not workspaces:
        return [
            CheckResult(
                "Azure ML",
                "workspaces",
                Verdict.SKIP,
                "no workspace configured",
                "set MLBOT_AZUREML_WORKSPACES (and subscription / resource group)",
            )
        ]
    results = []
    for workspace in workspaces:

        async def probe(ws: Workspace = workspace) -> str:
            jobs = await source.list_active(ws)
            circuits = sum(1 for job in jobs if job.circuit)
            return f"{len(jobs)} job(s) visible, {circuits} with a circuit tag"

        results.append(
            await _guarded(
                "Azure ML",
                f"workspace {workspace.name} ({workspace.resource_group})",
                probe,
                "check MLBOT_AZUREML_WORKSPACES, MLBOT_AZURE_SUBSCRIPTION_ID, "
                "MLBOT_AZURE_RESOURCE_GROUP",
            )
        )
    return results


async def check_devops(
    pipelines: ReadsPipelines | None,
    *,
    project: str,
    pipeline_names: list[tuple[str, str]],
    variable_group: str,
) -> list[CheckResult]:
    """`pipeline_names` pairs each pipeline name with the setting that names it."""
    if pipelines is None:
        return [
            CheckResult(
                "Azure DevOps",
                "organization",
                Verdict.SKIP,
                "not configured",
                "set MLBOT_DEVOPS_ORG_URL, MLBOT_DEVOPS_PROJECT and MLBOT_DEVOPS_PAT",
            )
        ]

    async def project_probe() -> str:
        approvals = await pipelines.list_pending_approvals()
        return f"reachable, {len(approvals)} pending approval(s)"

    results = [
        await _guarded(
            "Azure DevOps",
            f"project {project}",
            project_probe,
            "check MLBOT_DEVOPS_ORG_URL and MLBOT_DEVOPS_PROJECT",
        )
    ]
    if results[0].verdict is Verdict.FAIL:
        # Everything below lives in the project; repeating the same failure helps nobody.
        return results
    for name, setting in pipeline_names:

        async def pipeline_probe(pipeline: str = name) -> str:
            found = await pipelines.find_pipeline(pipeline)
            return f"found (id {getattr(found, 'id', '?')})"

        results.append(
            await _guarded("Azure DevOps", f"pipeline {name}", pipeline_probe, f"check {setting}")
        )

    async def group_probe() -> str:
        variables = await pipelines.get_variable_group(variable_group)
        return f"{len(variables)} variable(s)"

    results.append(
        await _guarded(
            "Azure DevOps",
            f"variable group {variable_group}",
            group_probe,
            "check MLBOT_VARIABLE_GROUP and that the token may read the library",
        )
    )
    return results


def all_passed(results: list[CheckResult]) -> bool:
    return all(result.verdict is not Verdict.FAIL for result in results)


def render_check_table(results: list[CheckResult]) -> str:
    """A plain-text table that reads well in a terminal and in a pipeline log."""
    headers = ("", "area", "what", "result", "to fix")
    marks = {Verdict.OK: "✔", Verdict.FAIL: "✘", Verdict.SKIP: "-"}
    rows = [
        (marks[r.verdict], r.area, r.target, r.detail, r.fix if r.verdict is not Verdict.OK else "")
        for r in results
    ]
    widths = [max(len(str(row[i])) for row in [headers, *rows]) for i in range(len(headers))]
    lines = []
    for row in [headers, *rows]:
        lines.append("  ".join(str(cell).ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
    failed = sum(1 for r in results if r.verdict is Verdict.FAIL)
    lines.append("")
    lines.append("all good" if not failed else f"{failed} check(s) failed")
    return "\n".join(lines)
