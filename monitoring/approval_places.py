"""Where an Azure DevOps approval waits: its run, stage and the environment it guards.

The documented 7.1 `Approval` names none of these. They come from documented calls:
the run's timeline (Build - Get Build Timeline) holds one `Checkpoint.Approval` record
per approval, whose id is the approval id, under a `Checkpoint` record whose id is the
check suite id, under the `Stage` record; the check suite (Check Evaluations - Get)
names the resource each check run guards, and for approvals on an environment that is
`{"type": "environment", "id": …}`. This module holds the pure reading of those answers.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

APPROVAL_RECORD = "checkpoint.approval"
CHECKPOINT_RECORD = "checkpoint"
STAGE_RECORD = "stage"
ENVIRONMENT_RESOURCE = "environment"


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One record of a build timeline, as far as approvals need it."""

    id: str
    parent_id: str | None
    type: str
    name: str


@dataclass(frozen=True, slots=True)
class TimelineApproval:
    approval_id: str
    check_suite_id: str
    stage: str


@dataclass(frozen=True, slots=True)
class GuardedResource:
    """A resource a check run guards (`checkConfigurationRef.resource`)."""

    type: str
    id: str
    name: str = ""


@dataclass(frozen=True, slots=True)
class ApprovalPlace:
    """What Azure DevOps says about where one approval waits."""

    run_id: int
    run_name: str
    pipeline_id: int | None
    pipeline_name: str
    stage: str
    environments: tuple[str, ...]
    web_url: str = ""

    @property
    def environment(self) -> str | None:
        """The one environment the approval guards; None when there is none or several."""
        return self.environments[0] if len(self.environments) == 1 else None


def approvals_in_timeline(records: Iterable[TimelineEntry]) -> dict[str, TimelineApproval]:
    """The approvals of one timeline, keyed by lower-cased approval id (ids are GUIDs)."""
    entries = list(records)
    by_id = {entry.id.lower(): entry for entry in entries}
    found: dict[str, TimelineApproval] = {}
    for entry in entries:
        if entry.type.lower() != APPROVAL_RECORD or not entry.parent_id:
            continue
        checkpoint = by_id.get(entry.parent_id.lower())
        if checkpoint is None or checkpoint.type.lower() != CHECKPOINT_RECORD:
            continue
        stage = _stage_above(checkpoint, by_id)
        found[entry.id.lower()] = TimelineApproval(entry.id, checkpoint.id, stage)
    return found


def environment_ids(resources: Iterable[GuardedResource]) -> tuple[str, ...]:
    """The distinct environments among guarded resources, in order."""
    seen: list[str] = []
    for resource in resources:
        if resource.type.lower() == ENVIRONMENT_RESOURCE and resource.id not in seen:
            seen.append(resource.id)
    return tuple(seen)


def _stage_above(entry: TimelineEntry, by_id: dict[str, TimelineEntry]) -> str:
    current: TimelineEntry | None = entry
    # Parents form a short chain (job, phase, stage); the bound guards against a loop.
    for _ in range(len(by_id) + 1):
        if current is None:
            return ""
        if current.type.lower() == STAGE_RECORD:
            return current.name
        current = by_id.get(current.parent_id.lower()) if current.parent_id else None
    return ""
