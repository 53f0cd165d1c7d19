"""Keeping the store's view of training jobs current.

Each pass makes one listing per workspace, plus one `get` for each job the store still
thinks is active but the listing no longer returns (to learn how it ended). `status`
then renders from the store without ever waiting on Azure.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from monitoring.azure_calls import AzureCallError
from monitoring.jobs import TrainingJob, Workspace

log = logging.getLogger(__name__)


class JobSource(Protocol):
    async def list_active(self, workspace: Workspace) -> list[TrainingJob]: ...

    async def get(self, workspace: Workspace, name: str) -> TrainingJob: ...


class JobSink(Protocol):
    async def upsert_many(self, jobs: list[TrainingJob], *, now: datetime) -> None: ...

    async def list(self, *, limit: int | None = None) -> list[TrainingJob]: ...


@dataclass(frozen=True, slots=True)
class SyncOutcome:
    listed: int
    followed_up: int
    failures: tuple[str, ...]


class JobSync:
    def __init__(
        self,
        source: JobSource,
        workspaces: list[Workspace],
        store: JobSink,
        clock: Callable[[], datetime],
        *,
        circuits_only: bool = True,
    ) -> None:
        self._source = source
        self._workspaces = list(workspaces)
        self._store = store
        self._clock = clock
        # Training jobs carry a circuit tag; other jobs in the workspace are not ours.
        self._circuits_only = circuits_only

    async def sync_once(self) -> SyncOutcome:
        failures: list[str] = []
        seen: set[tuple[str, str]] = set()
        listed = 0
        for workspace in self._workspaces:
            try:
                jobs = await self._source.list_active(workspace)
            except AzureCallError as exc:
                failures.append(str(exc))
                log.warning("listing jobs failed: %s", exc)
                continue
            mine = [job for job in jobs if job.circuit or not self._circuits_only]
            seen.update((job.workspace, job.name) for job in jobs)
            listed += len(mine)
            await self._store.upsert_many(mine, now=self._clock())
        followed = await self._follow_up_vanished(seen, failures)
        return SyncOutcome(listed, followed, tuple(failures))

    async def _follow_up_vanished(self, seen: set[tuple[str, str]], failures: list[str]) -> int:
        by_key = {workspace.key: workspace for workspace in self._workspaces}
        count = 0
        for job in await self._store.list():
            if job.state.is_terminal or (job.workspace, job.name) in seen:
                continue
            workspace = by_key.get(job.workspace)
            if workspace is None:
                continue
            try:
                latest = await self._source.get(workspace, job.name)
            except AzureCallError as exc:
                failures.append(str(exc))
                continue
            await self._store.upsert_many([latest], now=self._clock())
            count += 1
        return count

    async def run(self, interval_s: Callable[[], float], stop: asyncio.Event) -> None:
        """Sync until `stop` is set; the interval is read each time so settings can change."""
        while not stop.is_set():
            try:
                await self.sync_once()
            except Exception:
                log.exception("job sync pass failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval_s())
