"""A pipeline run mlbot means to queue once: its states and how it is stored.

The store keeps these rows (`store/pipeline_intents.py`); `monitoring/pipeline_runs.py`
moves them through their states. Both import this module, never each other's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

# States of an intent:
#   pending -> posting -> queued | unknown | failed
#   unknown | posting -> queued (found by find_run) | posting (posted again once settled)
#   failed -> posting (asked again)
PENDING = "pending"  # recorded, not posted by this record (maybe by a process that stopped)
POSTING = "posting"  # a POST left and no answer was recorded yet
UNKNOWN = "unknown"  # the POST ended without telling whether a run was queued
QUEUED = "queued"  # the run id is known
FAILED = "failed"  # Azure DevOps refused it: no run was queued
UNRESOLVED = (PENDING, POSTING, UNKNOWN, FAILED)


@dataclass(frozen=True, slots=True)
class PipelineIntent:
    key: str
    pipeline: str
    parameters: dict[str, str]
    status: str
    run_id: int | None
    run_url: str | None
    posts: int
    posted_at: datetime | None
    error: str | None
    event_id: int | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event as the cursor reads it: enough to turn it into an intent."""

    id: int
    key: str
    payload: dict[str, Any] = field(default_factory=dict)
