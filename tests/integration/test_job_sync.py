"""Job sync against an in-memory job source and the real store."""

from __future__ import annotations

from datetime import UTC, datetime

from monitoring.azure_calls import TransientAzureError
from monitoring.job_sync import JobSync
from monitoring.jobs import JobState, TrainingJob, Workspace
from store.database import Database
from store.watched_jobs import WatchedJobStore

WS = Workspace("sub", "rg", "ws")
NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def job(name: str, status: str, state: JobState, circuit: str | None = "P/C1") -> TrainingJob:
    return TrainingJob(WS.key, name, name, "exp", circuit, status, state)


class Source:
    def __init__(self) -> None:
        self.listing: list[TrainingJob] = []
        self.finished: dict[str, TrainingJob] = {}
        self.calls: list[str] = []
        self.fail_listing = False

    async def list_active(self, workspace: Workspace) -> list[TrainingJob]:
        self.calls.append(f"list {workspace.name}")
        if self.fail_listing:
            raise TransientAzureError("Azure ML", "list jobs", "HTTP 503")
        return list(self.listing)

    async def get(self, workspace: Workspace, name: str) -> TrainingJob:
        self.calls.append(f"get {name}")
        return self.finished[name]


async def test_one_listing_per_pass_and_a_get_only_for_vanished_jobs(database: Database) -> None:
    store = WatchedJobStore(database)
    source = Source()
    sync = JobSync(source, [WS], store, lambda: NOW)
    source.listing = [
        job("a", "Running", JobState.RUNNING),
        job("b", "Queued", JobState.WAITING),
        job("other", "Running", JobState.RUNNING, circuit=None),  # not a circuit job
    ]
    outcome = await sync.sync_once()
    assert outcome.listed == 2 and outcome.followed_up == 0
    assert source.calls == ["list ws"]
    assert {j.name for j in await store.list()} == {"a", "b"}

    # "a" leaves the listing: one get tells how it ended.
    source.calls.clear()
    source.listing = [job("b", "Running", JobState.RUNNING)]
    source.finished["a"] = job("a", "Failed", JobState.FAILED)
    outcome = await sync.sync_once()
    assert source.calls == ["list ws", "get a"]
    states = {j.name: j.state for j in await store.list()}
    assert states == {"a": JobState.FAILED, "b": JobState.RUNNING}

    # Terminal jobs are not fetched again.
    source.calls.clear()
    await sync.sync_once()
    assert source.calls == ["list ws"]  # "a" is over; "b" is still listed


async def test_listing_failure_is_reported_not_raised(database: Database) -> None:
    source = Source()
    source.fail_listing = True
    outcome = await JobSync(source, [WS], WatchedJobStore(database), lambda: NOW).sync_once()
    assert outcome.listed == 0 and "HTTP 503" in outcome.failures[0]
