"""Azure ML as a dict of jobs, with one call that can be held open by the test.

Holding a call (`hold_next`) lets a chat command or a push land in the middle of an
engine tick, at a chosen point, without sleeping.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from domain.jobs import TrainingJob, Workspace
from monitoring.azure_calls import AzureNotFoundError


@dataclass
class Hold:
    """One call held open: `reached` is set when it starts, it returns once `release` is."""

    operation: str
    reached: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)


class GatedJobSource:
    """Azure ML as a dict of jobs by name; listing shows the unfinished ones."""

    def __init__(self) -> None:
        self.jobs: dict[str, TrainingJob] = {}
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

    async def list_active(self, workspace: Workspace) -> list[TrainingJob]:
        await self._maybe_wait("list_active")
        return [
            j
            for j in self.jobs.values()
            if j.workspace == workspace.key and not j.state.is_terminal
        ]

    async def get(self, workspace: Workspace, name: str) -> TrainingJob:
        await self._maybe_wait("get")
        job = self.jobs.get(name)
        if job is None or job.workspace != workspace.key:
            raise AzureNotFoundError("Azure ML", f"get {name}", "no such job")
        return job

    async def cancel(self, workspace: Workspace, name: str) -> None:
        self.cancelled.append(name)
