"""What `status` shows, assembled from the store only (it never waits on Azure).

The report's types and order live in `domain.status`; this module reads the store.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Protocol

from domain.leadership import LeaderView
from domain.status import (
    LIKE_ESCAPE,
    MAX_FILTER_CHARS,
    MAX_JOBS_SHOWN,
    STATE_RANK,
    JobLine,
    JobPage,
    LastDeployment,
    PendingApproval,
    StatusFilterError,
    StatusReport,
    build_status_report,
    elapsed_of,
    like_pattern,
    status_filter,
)

__all__ = [
    "LIKE_ESCAPE",
    "MAX_FILTER_CHARS",
    "MAX_JOBS_SHOWN",
    "STATE_RANK",
    "DeploymentReader",
    "JobLine",
    "JobPage",
    "JobReader",
    "LastDeployment",
    "PendingApproval",
    "StatusFilterError",
    "StatusReport",
    "StatusService",
    "StuckReader",
    "build_status_report",
    "elapsed_of",
    "like_pattern",
    "status_filter",
]


class JobReader(Protocol):
    async def status_page(self, filter_text: str, limit: int) -> JobPage: ...


class DeploymentReader(Protocol):
    async def deployment_overview(
        self, approvals: int = 10
    ) -> tuple[list[PendingApproval], list[LastDeployment]]:
        """Pending approvals (newest first, at most `approvals`) and the latest
        deployment per environment."""
        ...


class StuckReader(Protocol):
    async def stuck(self, limit: int = 20) -> list[tuple[str, str, str]]: ...


class HoldReader(Protocol):
    async def hold_summary(self, now: datetime, since: datetime) -> tuple[int, int]: ...


HELD_WINDOW = timedelta(hours=24)


def leader_note(view: LeaderView) -> str:
    """One line naming the replica that runs the engine, and the one answering."""
    if view.leader is None:
        return (
            f"No replica leads the engine right now (this is {view.replica_id}); "
            "one takes over when the lease expires."
        )
    if view.leader == view.replica_id:
        return f"Replica {view.replica_id} (this one) leads the engine."
    return f"Replica {view.leader} leads the engine (this is {view.replica_id})."


class StatusService:
    """Builds the status report for the bot from the store (never from Azure)."""

    def __init__(
        self,
        jobs: JobReader,
        stuck: StuckReader | None = None,
        deployments: DeploymentReader | None = None,
        limit: int = MAX_JOBS_SHOWN,
        first_check_pending: Callable[[], bool] = lambda: False,
        holds: HoldReader | None = None,
        leader: Callable[[], LeaderView] | None = None,
    ) -> None:
        self._jobs = jobs
        self._holds = holds
        self._first_check_pending = first_check_pending
        self._stuck = stuck
        self._deployments = deployments
        self._limit = limit
        self._leader = leader

    async def report(self, now: datetime, filter_text: str = "") -> StatusReport:
        """Raises StatusFilterError for a filter that cannot be used."""
        filter_text = status_filter(filter_text)
        page = await self._jobs.status_page(filter_text, self._limit)
        report = build_status_report(page, now, filter_text)
        if self._first_check_pending():
            report = dataclasses.replace(report, first_check_pending=True)
        if self._stuck is not None:
            report = dataclasses.replace(report, stuck=tuple(await self._stuck.stuck(limit=5)))
        if self._deployments is not None and not filter_text.strip():
            approvals, deployments = await self._deployments.deployment_overview()
            report = dataclasses.replace(
                report, approvals=tuple(approvals), deployments=tuple(deployments)
            )
        if self._holds is not None:
            active, held = await self._holds.hold_summary(now, now - HELD_WINDOW)
            report = dataclasses.replace(report, active_silences=active, held_recently=held)
        if self._leader is not None:
            report = dataclasses.replace(report, leader_note=leader_note(self._leader()))
        return report
