"""Escalation: what nobody took in time is posted again, to the next people.

- A training failure with its retries exhausted (or an attempt past its time limit that
  will not be retried) that nobody acknowledged within `after`, while no later attempt
  of the circuit exists, becomes a `failure_escalated` event.
- An approval still undecided after `after` becomes an `approval_escalated` event.

One level: each original escalates at most once (the event key says so, so a second
replica or a restarted pass cannot post it twice). Failures mlbot is still retrying are
not escalated: the retry is someone taking care of it.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from domain.monitoring import EventRecord

FAILURE_KINDS = ("training_failed", "attempt_timed_out")
APPROVAL_KIND = "approval_required"
LEVEL = 1


def escalation_key(original: EventRecord, level: int = LEVEL) -> str:
    return f"escalated:{original.id}:{level}"


@dataclass(frozen=True, slots=True)
class Escalation:
    key: str
    kind: str
    payload: dict[str, Any]


def _copy(original: EventRecord, *names: str) -> dict[str, Any]:
    return {name: original.payload.get(name) for name in names if original.payload.get(name)}


def due_escalations(
    failures: Sequence[EventRecord],
    approvals: Sequence[EventRecord],
    *,
    decided_approvals: Collection[str],
    acknowledged_jobs: Collection[str],
    retried: Collection[int],
    already: Collection[str],
    summaries: dict[int, str],
    now: datetime,
    after: timedelta,
) -> list[Escalation]:
    """The escalations due now (pure: the caller read the store)."""
    due: list[Escalation] = []
    for event in failures:
        job = f"{event.workspace}/{event.job_name}"
        if (
            event.kind not in FAILURE_KINDS
            or not event.payload.get("retries_exhausted")
            or event.delivered_at is None
            or now - event.created_at < after
            or escalation_key(event) in already
            or job in acknowledged_jobs
            or event.id in retried
        ):
            continue
        payload = {
            **_copy(event, "workspace", "job_name", "circuit", "attempt", "studio_url"),
            "original_event_id": event.id,
            "original_kind": event.kind,
            "level": LEVEL,
            "waited": (now - event.created_at).total_seconds(),
            "summary": summaries.get(event.id),
        }
        due.append(Escalation(escalation_key(event), "failure_escalated", payload))
    for event in approvals:
        approval = event.payload.get("approval_id")
        if (
            event.kind != APPROVAL_KIND
            or not isinstance(approval, str)
            or approval in decided_approvals
            or event.delivered_at is None
            or now - event.created_at < after
            or escalation_key(event) in already
        ):
            continue
        payload = {
            **_copy(event, "approval_id", "environment", "pipeline", "run_id", "web_url"),
            "original_event_id": event.id,
            "original_kind": event.kind,
            "level": LEVEL,
            "waited": (now - event.created_at).total_seconds(),
            "summary": summaries.get(event.id),
        }
        due.append(Escalation(escalation_key(event), "approval_escalated", payload))
    return due
