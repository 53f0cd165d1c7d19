"""Approval hooks completed from Azure DevOps before they are recorded.

The published approval-pending and approval-completed samples name approvers without a
display name, no `actualApprover`, and leave pipeline, run and stage null, so a card
built from the hook alone cannot say who may approve or who decided. Before such an
event is stored, the REST approval (Approvals - Get, with its steps) gives the names,
and the run's timeline and check suite (`monitoring.approval_places`) give the run,
stage and the environment the approval guards. What the hook said is kept where Azure
DevOps adds nothing; the environment is Azure DevOps' check, not the message's wording.
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
from monitoring.devops import Approval
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


def with_approval_details(
    record: Record, source: ApprovalSource | None, *, timeout_s: float = 10.0
) -> Record:
    """Record hook events; approval events first get what Azure DevOps knows of them."""
    if source is None:
        return record

    async def fetch(approval_id: str, run_id: int | None) -> dict[str, Any]:
        approval = await source.get_approval(approval_id)
        place = await source.locate_approval(approval_id, run_id)
        return {"approval": approval, "place": place}

    async def record_with_details(event: NewEvent) -> bool:
        payload = event.payload
        approval_id = payload.get("approval_id")
        if event.kind not in APPROVAL_KINDS or not isinstance(approval_id, str):
            return await record(event)
        run_id = payload.get("run_id")
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
