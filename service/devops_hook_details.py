"""Service hooks completed from Azure DevOps: partial deliveries, and approvals.

A Web Hooks subscription sending "Resource details: Minimal" or "None" leaves the run or
approval out; `hook_completer` reads the run (Builds - Get) or the run's pending approval
before the event is classified, and a failing Azure DevOps keeps the event as it came.

The published approval-pending and approval-completed samples name approvers without a
display name, no `actualApprover`, and leave pipeline, run and stage null, so a card
built from the hook alone cannot say who may approve or who decided. Before such an
event is stored, the REST approval (Approvals - Get, with its steps) gives the names,
and the run's timeline and check suite (`monitoring.approval_places`) give the run,
stage and the environment the approval guards. What the hook said is kept where Azure
DevOps adds nothing; the environment is Azure DevOps' check, not the message's wording.
A deployment whose stage failed because its approval was rejected is marked so
(`approval_status`, `decided_by`, `comment` from the run's approvals): people are told who
rejected it, not to read logs that hold no error.
A slow or failing Azure DevOps never loses the event: it is recorded as it came.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from typing import Any, Protocol

from domain.events import EventKind
from monitoring.approval_places import ApprovalPlace
from monitoring.azure_calls import AzureCallError
from monitoring.devops import Approval, PipelineRun, teams_decision
from service.devops_hooks import (
    APPROVAL_PENDING,
    BUILD_COMPLETE,
    RUN_STATE_CHANGED,
    Complete,
    DevOpsHookEvent,
    RunDetails,
    with_run_details,
)
from store.monitoring import NewEvent

log = logging.getLogger(__name__)

Record = Callable[[NewEvent], Awaitable[bool]]
APPROVAL_KINDS = frozenset({EventKind.APPROVAL_REQUIRED.value, EventKind.APPROVAL_DECIDED.value})


class ApprovalSource(Protocol):
    async def get_approval(self, approval_id: str) -> Approval: ...

    async def locate_approval(
        self, approval_id: str, run_id: int | None = None
    ) -> ApprovalPlace | None: ...


def completed_payload(
    payload: Mapping[str, Any], approval: Approval | None, place: ApprovalPlace | None
) -> dict[str, Any]:
    """The hook's payload with what Azure DevOps knows filled in (pure)."""
    filled = dict(payload)
    if approval is not None:
        if not filled.get("approvers") and approval.approvers:
            filled["approvers"] = list(approval.approvers)
        decided = filled.get("kind") == EventKind.APPROVAL_DECIDED.value
        if decided and not filled.get("decided_by") and approval.decided_by:
            filled["decided_by"] = approval.decided_by
        if decided and not filled.get("comment") and approval.comment:
            filled["comment"] = approval.comment
        if not filled.get("instructions") and approval.instructions:
            filled["instructions"] = approval.instructions
    if place is not None:
        for key, value in (
            ("run_id", place.run_id),
            ("run_name", place.run_name),
            ("pipeline", place.pipeline_name),
            ("pipeline_id", place.pipeline_id),
            ("stage", place.stage),
            ("web_url", place.web_url),
        ):
            if filled.get(key) in (None, "") and value not in (None, ""):
                filled[key] = value
        if place.environment is not None:
            filled["environment"] = place.environment
    return filled


class RunApprovalSource(ApprovalSource, Protocol):
    async def approvals_of_run(self, run_id: int) -> list[Approval]: ...


def with_rejection(payload: Mapping[str, Any], approvals: list[Approval]) -> dict[str, Any]:
    """A failed deployment's payload, saying so when it failed because its approval was
    rejected (pure): a rejection is a decision, not a fault in the run's logs."""
    filled = dict(payload)
    rejected = [a for a in approvals if a.status.lower() == "rejected"]
    if not rejected:
        return filled
    stage = str(payload.get("stage") or "").casefold().replace(" ", "_")
    same_stage = [a for a in rejected if a.stage.casefold().replace(" ", "_") == stage]
    chosen = (same_stage or rejected)[-1]
    filled["approval_id"] = chosen.id
    filled["approval_status"] = "rejected"
    by, comment = chosen.decided_by, chosen.comment
    # Rejected from a Teams card: Azure DevOps names mlbot, the comment names the person.
    in_teams = teams_decision(comment)
    if in_teams is not None:
        by, comment = f"{in_teams[0]} (in Teams)", in_teams[1]
    if by and not filled.get("decided_by"):
        filled["decided_by"] = by
    if comment and not filled.get("comment"):
        filled["comment"] = comment
    return filled


def with_approval_details(
    record: Record, source: RunApprovalSource | None, *, timeout_s: float = 10.0
) -> Record:
    """Record hook events; approval events first get what Azure DevOps knows of them, and
    a failed deployment whether its approval was rejected."""
    if source is None:
        return record

    async def record_failed_deployment(event: NewEvent, run_id: int) -> bool:
        try:
            approvals = await asyncio.wait_for(source.approvals_of_run(run_id), timeout_s)
        except (AzureCallError, TimeoutError) as exc:
            log.warning("run %s recorded without its approvals: %s", run_id, exc)
            return await record(event)
        return await record(replace(event, payload=with_rejection(event.payload, approvals)))

    async def fetch(approval_id: str, run_id: int | None) -> dict[str, Any]:
        approval = await source.get_approval(approval_id)
        place = await source.locate_approval(approval_id, run_id)
        return {"approval": approval, "place": place}

    async def record_with_details(event: NewEvent) -> bool:
        payload = event.payload
        approval_id = payload.get("approval_id")
        run_id = payload.get("run_id")
        failed = event.kind == EventKind.DEPLOYMENT_FAILED.value
        if failed and isinstance(run_id, int) and not isinstance(run_id, bool):
            return await record_failed_deployment(event, run_id)
        if event.kind not in APPROVAL_KINDS or not isinstance(approval_id, str):
            return await record(event)
        try:
            found = await asyncio.wait_for(
                fetch(approval_id, run_id if isinstance(run_id, int) else None), timeout_s
            )
        except (AzureCallError, TimeoutError) as exc:
            log.warning("approval %s recorded as the hook sent it: %s", approval_id, exc)
            return await record(event)
        filled = completed_payload(payload, found["approval"], found["place"])
        return await record(replace(event, payload=filled))

    return record_with_details


class HookSource(ApprovalSource, Protocol):
    async def get_build(self, run_id: int) -> PipelineRun: ...

    async def list_pending_approvals(self) -> list[Approval]: ...


def hook_completer(source: HookSource | None, *, timeout_s: float = 10.0) -> Complete | None:
    """What completes a Minimal/None delivery: the run (Builds - Get) for run events, the
    pending approval of the run for an approval event without its approval."""
    if source is None:
        return None

    async def fill(event: DevOpsHookEvent) -> DevOpsHookEvent:
        if event.event_type in (RUN_STATE_CHANGED, BUILD_COMPLETE) and event.run_id is not None:
            run = await source.get_build(event.run_id)
            return with_run_details(
                event,
                RunDetails(
                    pipeline=run.pipeline_name,
                    pipeline_id=run.pipeline_id or None,
                    run_name=run.name,
                    state=run.state,
                    result=run.result,
                    finished_at=run.finished_at.isoformat() if run.finished_at else None,
                    web_url=run.web_url,
                ),
            )
        if event.approval_id is not None and event.approval_status is None:
            approval = await source.get_approval(event.approval_id)
            return replace(event, approval_status=approval.status, partial=False)
        if event.event_type == APPROVAL_PENDING and event.approval_id is None:
            waiting = [a for a in await source.list_pending_approvals() if a.run_id == event.run_id]
            if len(waiting) == 1:
                return replace(
                    event, approval_id=waiting[0].id, approval_status="pending", partial=False
                )
        return event

    async def complete(event: DevOpsHookEvent) -> DevOpsHookEvent:
        try:
            return await asyncio.wait_for(fill(event), timeout_s)
        except (AzureCallError, TimeoutError) as exc:
            log.warning("devops hook %s kept as sent (partial): %s", event.event_id, exc)
            return event

    return complete
