"""The store on SQLite and, when MLBOT_TEST_POSTGRES_URL is set, on PostgreSQL."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

from monitoring.jobs import JobState, TrainingJob
from store.audit import AuditEntry, AuditTrail
from store.conversations import ConversationRecord, ConversationStore
from store.database import Database
from store.watched_jobs import WatchedJobStore

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def record(conversation_id: str, team: str | None = None) -> ConversationRecord:
    return ConversationRecord(
        conversation_id=conversation_id,
        channel_id="msteams",
        service_url="https://smba.example/amer/",
        tenant_id="tenant-1",
        conversation_type="channel" if team else "personal",
        team_id=team,
        title=None,
        reference={
            "conversation": {"id": conversation_id},
            "serviceUrl": "https://smba.example/amer/",
        },
        installed_by="user-1",
        installed_at=NOW,
    )


async def test_migrations_are_idempotent_and_ready(database: Database) -> None:
    assert await database.migrate() == "0007"
    readiness = await database.readiness()
    assert readiness.ready and readiness.revision == "0007"


async def test_unmigrated_database_is_not_ready(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/fresh.db")
    readiness = await db.readiness()
    assert not readiness.ready and "expected 0007" in readiness.detail
    await db.dispose()


async def test_conversations_remember_refresh_forget(database: Database) -> None:
    store = ConversationStore(database)
    assert await store.remember(record("c1", team="team-1")) is True
    assert await store.remember(record("c1", team="team-1")) is False
    assert await store.remember(record("c2", team="team-1")) is True
    assert await store.remember(record("p1")) is True
    fetched = await store.get("c1")
    assert fetched is not None and fetched.reference["conversation"]["id"] == "c1"
    assert "training_completed" in await store.event_kinds("c1")
    assert await store.forget_team("team-1") == 2
    assert [c.conversation_id for c in await store.all()] == ["p1"]
    assert await store.forget("p1") is True
    assert await store.forget("p1") is False
    assert await store.event_kinds("p1") == []


async def test_watched_jobs_upsert_and_list(database: Database) -> None:
    store = WatchedJobStore(database)
    job = TrainingJob(
        workspace="s/r/w",
        name="job-1",
        display_name="train PLANT001/CIRCUIT01",
        experiment="exp",
        circuit="PLANT001/CIRCUIT01",
        status="Running",
        state=JobState.RUNNING,
        started_at=NOW - timedelta(minutes=3),
    )
    await store.upsert(job, now=NOW)
    finished = TrainingJob(
        workspace=job.workspace,
        name=job.name,
        display_name=job.display_name,
        experiment=job.experiment,
        circuit=job.circuit,
        status="Failed",
        state=JobState.FAILED,
        started_at=job.started_at,
        ended_at=NOW,
        error_summary="CUDA out of memory",
        attempt=2,
    )
    await store.upsert(finished, now=NOW + timedelta(seconds=30))
    listed = await store.list()
    assert len(listed) == 1 and await store.count() == 1
    got = listed[0]
    assert got.state is JobState.FAILED and got.attempt == 2
    assert got.error_summary == "CUDA out of memory"
    assert got.started_at == NOW - timedelta(minutes=3)  # timezone-aware round trip


async def test_audit_trail_newest_first(database: Database) -> None:
    audit = AuditTrail(database)
    await audit.record(AuditEntry(at=NOW, action="install", outcome="ok", actor_id="u1"))
    await audit.record(
        AuditEntry(at=NOW, action="retry", outcome="refused", detail="not an operator")
    )
    entries = await audit.recent()
    assert [e.action for e in entries] == ["retry", "install"]
    assert entries[0].detail == "not an operator"


def _job(
    name: str, state: JobState, circuit: str, experiment: str = "circuit-training"
) -> TrainingJob:
    return TrainingJob(
        workspace="s/r/w",
        name=name,
        display_name=f"train {circuit}",
        experiment=experiment,
        circuit=circuit,
        status=state.value.title(),
        state=state,
    )


async def test_status_page_orders_filters_limits_and_counts(database: Database) -> None:
    store = WatchedJobStore(database)
    for item in [
        _job("done", JobState.COMPLETED, "P/C4"),
        _job("failed", JobState.FAILED, "P/C3"),
        _job("queued", JobState.WAITING, "P/C2"),
        _job("run-b", JobState.RUNNING, "P/C1b"),
        _job("run-a", JobState.RUNNING, "P/C1a", experiment="nightly"),
    ]:
        await store.upsert(item, now=NOW)
    page = await store.status_page("", limit=10)
    assert [j.name for j in page.jobs] == ["run-a", "run-b", "queued", "failed", "done"]
    assert page.counts == {
        JobState.RUNNING: 2,
        JobState.WAITING: 1,
        JobState.FAILED: 1,
        JobState.COMPLETED: 1,
    }
    limited = await store.status_page("", limit=2)
    assert [j.name for j in limited.jobs] == ["run-a", "run-b"] and limited.total == 5
    # Filters match circuit, experiment or name, case-insensitively.
    assert [j.name for j in (await store.status_page("p/c3", 10)).jobs] == ["failed"]
    assert [j.name for j in (await store.status_page("NIGHTLY", 10)).jobs] == ["run-a"]
    assert [j.name for j in (await store.status_page("queue", 10)).jobs] == ["queued"]
    nothing = await store.status_page("zzz", 10)
    assert nothing.jobs == [] and nothing.total == 0


async def test_status_page_shows_each_circuit_by_its_latest_attempt(database: Database) -> None:
    store = WatchedJobStore(database)
    first = _job("c1-attempt-1", JobState.FAILED, "P/C1")
    retry = dataclasses.replace(
        first, name="c1-attempt-2", state=JobState.COMPLETED, status="Completed", attempt=2
    )
    other = _job("c2-attempt-1", JobState.FAILED, "P/C2")
    for item in (first, retry, other):
        await store.upsert(item, now=NOW)
    page = await store.status_page("", limit=10)
    assert [j.name for j in page.jobs] == ["c2-attempt-1", "c1-attempt-2"]
    assert page.counts == {JobState.FAILED: 1, JobState.COMPLETED: 1}


async def test_pending_approvals_and_last_deployments_from_hook_events(
    database: Database,
) -> None:
    from store.monitoring import MonitoringStore, NewEvent, Observation

    store = MonitoringStore(database)

    def event(key: str, kind: str, **payload: object) -> NewEvent:
        return NewEvent(key=key, kind=kind, payload=dict(payload))

    await store.apply(
        Observation(
            now=NOW,
            events=[
                event(
                    "a1",
                    "approval_required",
                    approval_id="A1",
                    pipeline="deploy",
                    stage="Deploy_Prod",
                    environment="prod",
                ),
                event(
                    "a2",
                    "approval_required",
                    approval_id="A2",
                    pipeline="deploy",
                    environment="staging",
                ),
                event("a2-done", "approval_decided", approval_id="A2"),
                event(
                    "d1",
                    "deployment_completed",
                    environment="prod",
                    pipeline="deploy",
                    run_name="20261129.1",
                ),
                event(
                    "d2",
                    "deployment_failed",
                    environment="prod",
                    pipeline="deploy",
                    run_name="20261129.2",
                ),
                event(
                    "d3",
                    "deployment_completed",
                    environment="staging",
                    pipeline="deploy",
                    run_name="20261129.3",
                ),
            ],
        )
    )
    pending = await store.pending_approvals()
    assert [(p.environment, p.stage) for p in pending] == [("prod", "Deploy_Prod")]
    latest = await store.last_deployments()
    assert [(d.environment, d.run, d.succeeded) for d in latest] == [
        ("prod", "20261129.2", False),
        ("staging", "20261129.3", True),
    ]
