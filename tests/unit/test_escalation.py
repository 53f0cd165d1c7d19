"""Which unhandled failures and approvals escalate, and only once."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

from domain.escalation import due_escalations, escalation_key
from domain.monitoring import EventRecord

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
AFTER = timedelta(minutes=30)


def _event(event_id: int, kind: str, age_min: float, **payload: Any) -> EventRecord:
    created = NOW - timedelta(minutes=age_min)
    return EventRecord(
        id=event_id,
        key=f"k{event_id}",
        kind=kind,
        payload=payload,
        session_id=1,
        workspace="ws",
        job_name=f"job{event_id}",
        circuit=payload.get("circuit"),
        created_at=created,
        delivered_at=created,
        delivery_attempts=1,
        last_error=None,
    )


def _due(failures: list[EventRecord], approvals: list[EventRecord], **given: Any) -> list[str]:
    values: dict[str, Any] = {
        "decided_approvals": set(),
        "acknowledged_jobs": set(),
        "retried": set(),
        "already": set(),
        "summaries": {},
        "now": NOW,
        "after": AFTER,
    }
    values.update(given)
    return [e.key for e in due_escalations(failures, approvals, **values)]


def test_a_final_failure_nobody_took_escalates_once_after_the_wait() -> None:
    final = _event(1, "training_failed", 31, circuit="P/C1", retries_exhausted=True)
    young = _event(2, "training_failed", 29, circuit="P/C2", retries_exhausted=True)
    retried = _event(3, "training_failed", 40, circuit="P/C3", retries_exhausted=False)
    assert _due([final, young, retried], []) == ["escalated:1:1"]
    assert _due([final], [], already={escalation_key(final)}) == []
    assert _due([final], [], acknowledged_jobs={"ws/job1"}) == []
    assert _due([final], [], retried={1}) == []
    undelivered = _event(4, "training_failed", 60, circuit="P/C4", retries_exhausted=True)
    undelivered = dataclasses.replace(undelivered, delivered_at=None)
    assert _due([undelivered], []) == []


def test_an_undecided_approval_escalates_a_decided_one_does_not() -> None:
    waiting = _event(5, "approval_required", 45, approval_id="a1", environment="prod")
    decided = _event(6, "approval_required", 45, approval_id="a2", environment="prod")
    due = due_escalations(
        [],
        [waiting, decided],
        decided_approvals={"a2"},
        acknowledged_jobs=set(),
        retried=set(),
        already=set(),
        summaries={5: "🔐 Approval required"},
        now=NOW,
        after=AFTER,
    )
    assert [(e.key, e.kind) for e in due] == [("escalated:5:1", "approval_escalated")]
    payload = due[0].payload
    assert payload["environment"] == "prod" and payload["approval_id"] == "a1"
    assert payload["waited"] == 45 * 60 and payload["summary"] == "🔐 Approval required"
