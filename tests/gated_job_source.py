"""Azure ML as a dict of jobs, with one call that can be held open by the test.

Holding a call (`hold_next`) lets a chat command or a push land in the middle of an
engine tick, at a chosen point, without sleeping.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime

from domain.jobs import TrainingJob, Workspace
from monitoring.azure_calls import AzureNotFoundError

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass
class Hold:
    """One call held open: `reached` is set when it starts, it returns once `release` is."""

    operation: str
    reached: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)


class GatedJobSource:
    """Azure ML as a dict of jobs by name; listing shows the unfinished ones.

    `lists_finished=True` lists as Azure ML does: finished jobs too, newest first, down
    to `created_since`.
    """

    def __init__(self, *, lists_finished: bool = False) -> None:
        self.jobs: dict[str, TrainingJob] = {}
        self.lists_finished = lists_finished
        self.listed_since: list[datetime | None] = []
        self.cancelled: list[str] = []
        self.hold: Hold | None = None

    def put(self, job: TrainingJob) -> None:
        self.jobs[job.name] = job

    def hold_next(self, operation: str) -> Hold:
        self.hold = Hold(operation)
        return self.hold

    async def _maybe_wait(self, operation: str) -> None:
        hold = self.hold
        if hold is not None and hold.operation == operation:
            self.hold = None
            hold.reached.set()
            await hold.release.wait()

    async def list_active(
        self, workspace: Workspace, *, created_since: datetime | None = None
    ) -> list[TrainingJob]:
        await self._maybe_wait("list_active")
        self.listed_since.append(created_since)
        mine = [j for j in self.jobs.values() if j.workspace == workspace.key]
        if not self.lists_finished:
            return [j for j in mine if not j.state.is_terminal]
        return [
            j
            for j in sorted(mine, key=lambda j: j.created_at or _EPOCH, reverse=True)
            if created_since is None or j.created_at is None or j.created_at >= created_since
        ]

    async def get(self, workspace: Workspace, name: str) -> TrainingJob:
        await self._maybe_wait("get")
        job = self.jobs.get(name)
        if job is None or job.workspace != workspace.key:
            raise AzureNotFoundError("Azure ML", f"get {name}", "no such job")
        return job

    async def cancel(self, workspace: Workspace, name: str) -> None:
        self.cancelled.append(name)
