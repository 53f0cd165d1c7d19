"""The ports of the monitoring engine: what it needs from the world, as protocols.

The engine is written against these and nothing else: the SQLAlchemy store, the Azure ML
and Azure DevOps adapters and the scheduler's clock satisfy them structurally, and unit
tests pass in-memory fakes.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from domain.jobs import TrainingJob, Workspace
from domain.monitoring import (
    AppliedPass,
    EventRecord,
    JobRecord,
    Observation,
    SessionRecord,
)


class Clock(Protocol):
    def __call__(self) -> datetime: ...


class EventWriter(Protocol):
    """Records events (and whatever else an observation carries) in one transaction."""

    async def apply(self, observation: Observation) -> list[str]: ...


class EngineJobSource(Protocol):
    """Azure ML jobs, as the engine reads and stops them."""

    async def list_active(
        self, workspace: Workspace, *, created_since: datetime | None = None
    ) -> list[TrainingJob]:
        """The workspace's jobs (finished ones too), down to those created at
        `created_since` (None: all of them)."""
        ...

    async def get(self, workspace: Workspace, name: str) -> TrainingJob: ...

    async def cancel(self, workspace: Workspace, name: str) -> None: ...


class PipelineQueue(Protocol):
    async def queue_run(self, pipeline_name: str, template_parameters: dict[str, str]) -> Any: ...


@runtime_checkable
class RunFinder(Protocol):
    """Pipelines that can find a run already queued (Azure DevOps can)."""

    async def find_run(
        self, pipeline_name: str, template_parameters: Mapping[str, str], since: datetime
    ) -> Any: ...


class EngineRepository(Protocol):
    """The engine's durable state: sessions, the jobs they hold, and events.

    Writes that come from people and hooks (`check_now*`, `move_job`, `reactivate`) bump
    a session's version; a pass's `apply_pass` writes a session only while its version
    is the one the pass read (see `domain.monitoring.Observation`).
    """

    async def open_session(
        self,
        *,
        kind: str,
        key: str,
        title: str,
        now: datetime,
        workspace: str | None = None,
        pipeline_run_id: int | None = None,
        created_by: str | None = None,
    ) -> SessionRecord: ...

    async def reactivate(self, session_id: int, now: datetime) -> None: ...

    async def check_now(self, session_id: int, now: datetime) -> None: ...

    async def check_now_matching(
        self,
        now: datetime,
        *,
        workspace: str | None = None,
        job_name: str | None = None,
        due_at: datetime | None = None,
        restart: bool = True,
    ) -> int: ...

    async def move_job(
        self,
        workspace: str,
        name: str,
        *,
        to_session: int,
        now: datetime,
        stop_watching: bool = False,
    ) -> bool: ...

    async def session(self, session_id: int) -> SessionRecord | None: ...

    async def due_sessions(self, now: datetime) -> list[SessionRecord]: ...

    async def next_due_at(self) -> datetime | None: ...

    async def session_jobs(self, session_id: int) -> list[JobRecord]: ...

    async def job_records(
        self,
        workspace: str,
        names: Collection[str] | None = None,
        *,
        unfinished: bool = False,
    ) -> dict[str, JobRecord]: ...

    async def apply(self, observation: Observation) -> list[str]: ...

    async def apply_pass(self, observation: Observation) -> AppliedPass: ...

    async def events_of_kind(
        self, kind: str, *, session_id: int | None = None
    ) -> list[EventRecord]: ...

    async def update_payload(self, event_id: int, payload: dict[str, Any]) -> None: ...

    async def mark_cancel_requested(self, workspace: str, name: str, now: datetime) -> None: ...
