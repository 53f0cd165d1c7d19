"""Checking a DevOps hook's claims with Azure DevOps itself before they cause anything.

A service hook is only a claim: whoever holds the hook secret can post one. Two claims
would act on production, so both are confirmed through the Azure DevOps API first:

- "a deployment completed" starts a health watch that can roll the environment back:
  the run must exist in that pipeline and must not have failed or been canceled; for a
  stage event, that stage must show as succeeded in the run's timeline, and for a run
  event the run must have succeeded;
- "an approval is pending" becomes a card with signed Approve / Reject buttons: the
  approval must exist and still be pending. The approvals API does not say which
  environment an approval guards, so the payload's label is kept for people to read
  but the buttons are signed for the strictest environment (the first production
  environment): only its approvers can press them.

When Azure DevOps cannot answer, the hook answers 503 so Azure DevOps delivers it again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from domain.events import EventKind
from monitoring.azure_calls import AzureCallError, AzureNotFoundError
from monitoring.devops import Approval, PipelineRun, RunStage

log = logging.getLogger(__name__)

_FAILED_RESULTS = frozenset({"failed", "canceled", "cancelled", "abandoned", "rejected"})
_SUCCEEDED_RESULTS = frozenset({"succeeded", "partiallysucceeded", "succeededwithissues"})
# `service.devops_hooks.STAGE_STATE_CHANGED`, which imports this module.
STAGE_EVENT = "ms.vss-pipelines.stage-state-changed-event"


def _succeeded(result: str | None) -> bool:
    return (result or "").lower() in _SUCCEEDED_RESULTS


def _stage_key(name: str) -> str:
    """Stage names compare as Azure DevOps shows them: `Deploy_Prod` is `Deploy Prod`."""
    return "".join(ch for ch in name.casefold() if ch.isalnum())


class RunsAndApprovals(Protocol):
    """The part of the Azure DevOps adapter the checks read."""

    async def get_run(self, pipeline_id: int, run_id: int) -> PipelineRun: ...

    async def get_stages(self, run_id: int) -> list[RunStage]: ...

    async def list_pending_approvals(self) -> list[Approval]: ...


class Verdict(StrEnum):
    CONFIRMED = "confirmed"  # record it, with `updates` applied to the payload
    REFUSED = "refused"  # Azure DevOps contradicts the hook: refuse it (422), do nothing
    UNAVAILABLE = "unavailable"  # Azure DevOps could not answer: ask for a redelivery


@dataclass(frozen=True, slots=True)
class Verification:
    verdict: Verdict
    reason: str = ""
    updates: dict[str, Any] = field(default_factory=dict)


CONFIRMED = Verification(Verdict.CONFIRMED)

# The kinds whose effects reach production; every other kind is only a card.
CHECKED_KINDS = frozenset({EventKind.DEPLOYMENT_COMPLETED.value, EventKind.APPROVAL_REQUIRED.value})


class HookVerifier:
    """Confirms deployment and approval claims; `devops` None means nothing can be."""

    def __init__(
        self,
        devops: RunsAndApprovals | None,
        production_environments: Callable[[], tuple[str, ...]],
    ) -> None:
        self._devops = devops
        self._production = production_environments

    async def verify(self, kind: str, payload: dict[str, Any]) -> Verification:
        if kind not in CHECKED_KINDS:
            return CONFIRMED
        if self._devops is None:
            return Verification(
                Verdict.REFUSED, "Azure DevOps is not configured, so the claim cannot be checked"
            )
        try:
            if kind == EventKind.DEPLOYMENT_COMPLETED.value:
                return await self._deployment(self._devops, payload)
            return await self._approval(self._devops, payload)
        except AzureNotFoundError:
            return Verification(Verdict.REFUSED, "Azure DevOps does not know it")
        except AzureCallError as exc:
            log.warning("devops hook: could not check with Azure DevOps: %s", exc)
            return Verification(Verdict.UNAVAILABLE, "Azure DevOps could not be asked; retry")

    async def _deployment(self, devops: RunsAndApprovals, payload: dict[str, Any]) -> Verification:
        pipeline_id = payload.get("pipeline_id")
        run_id = payload.get("run_id")
        if not isinstance(pipeline_id, int) or not isinstance(run_id, int):
            return Verification(Verdict.REFUSED, "the hook names no pipeline and run to check")
        run = await devops.get_run(pipeline_id, run_id)
        if run.run_id != run_id or (run.result or "").lower() in _FAILED_RESULTS:
            return Verification(
                Verdict.REFUSED, f"run {run_id} is {run.state} {run.result or ''}".strip()
            )
        stage = payload.get("stage")
        if payload.get("event_type") == STAGE_EVENT or stage:
            # A stage event: that stage of that run must have succeeded.
            wanted = _stage_key(str(stage or ""))
            stages = await devops.get_stages(run_id)
            found = [s for s in stages if wanted in (_stage_key(s.identifier), _stage_key(s.name))]
            if not any(s.state.lower() == "completed" and _succeeded(s.result) for s in found):
                return Verification(
                    Verdict.REFUSED, f"run {run_id} has no succeeded stage {str(stage)[:100]!r}"
                )
        elif not (run.state.lower() == "completed" and _succeeded(run.result)):
            return Verification(Verdict.REFUSED, f"run {run_id} has not succeeded")
        return CONFIRMED

    async def _approval(self, devops: RunsAndApprovals, payload: dict[str, Any]) -> Verification:
        approval_id = str(payload.get("approval_id") or "")
        pending = {a.id.lower(): a for a in await devops.list_pending_approvals()}
        approval = pending.get(approval_id.lower())
        if approval is None:
            return Verification(Verdict.REFUSED, f"approval {approval_id} is not pending")
        strictest = next(iter(self._production()), "prod")
        updates: dict[str, Any] = {
            "environment": strictest,
            "claimed_environment": payload.get("environment"),
            "pipeline": approval.pipeline_name or payload.get("pipeline"),
            "pipeline_id": approval.pipeline_id,
            "run_id": approval.run_id,
        }
        return Verification(Verdict.CONFIRMED, updates=updates)
