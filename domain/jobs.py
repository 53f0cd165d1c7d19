"""The project's own model of an Azure ML training job, independent of any SDK."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

# `<PLANT>/<CIRCUIT>`, each part letters, digits, `_` or `-`; nothing that could break the
# comma-separated pipeline variable.
CIRCUIT_PATTERN = re.compile(r"[A-Za-z0-9_-]+/[A-Za-z0-9_-]+")


class JobState(StrEnum):
    """What a job's Azure ML status means to people watching it."""

    WAITING = "waiting"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELED = "canceled"
    UNKNOWN = "unknown"

    @property
    def is_terminal(self) -> bool:
        return self in (JobState.COMPLETED, JobState.FAILED, JobState.CANCELED)


@dataclass(frozen=True, slots=True)
class Workspace:
    """An Azure ML workspace, addressed the way ARM addresses it."""

    subscription_id: str
    resource_group: str
    name: str

    @property
    def key(self) -> str:
        return f"{self.subscription_id}/{self.resource_group}/{self.name}"


@dataclass(frozen=True, slots=True)
class JobFailure:
    """What Azure ML says went wrong with a failed job, and the end of its main log."""

    code: str | None = None  # Azure ML's error code, e.g. "UserError"
    message: str | None = None
    category: str = "unknown"  # "user" (the job's code or data), "system" (Azure's side)
    log_name: str | None = None  # e.g. "user_logs/std_log.txt"
    log_tail: tuple[str, ...] = ()  # the last lines, bounded and with secrets masked
    # Why the details or the log could not be read (they are optional: the alert goes
    # out regardless).
    unavailable: str | None = None


@dataclass(frozen=True, slots=True)
class TrainingJob:
    """One Azure ML job as mlbot sees it (one per circuit and attempt)."""

    workspace: str  # Workspace.key
    name: str
    display_name: str
    experiment: str
    circuit: str | None
    status: str  # the raw Azure ML status, e.g. "Running"
    state: JobState
    created_at: datetime | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    studio_url: str | None = None
    error_summary: str | None = None
    attempt: int = 1
    failure: JobFailure | None = None  # failed jobs: Azure ML's error details and log tail
    # Who submitted it, as Azure ML says (`systemData.createdBy`: a person's name or UPN,
    # or a service principal for pipeline-submitted jobs); `notify me` matches on it.
    created_by: str | None = None
