"""A deployment whose approval was rejected is told as a rejection, by whom (pure parts)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from cards.events import event_summary, render_event_card
from monitoring.devops import Approval, decision_note, teams_decision
from service.devops_hook_details import with_rejection
from service.devops_hooks import DevOpsEventKind
from tests.unit.test_event_cards import devops_event


def approval(status: str, stage: str, comment: str = "", by: str = "") -> Approval:
    return Approval(
        id=f"id-{stage}-{status}",
        status=status,
        pipeline_id=None,
        pipeline_name="",
        run_id=None,
        run_name="",
        comment=comment,
        decided_by=by,
        stage=stage,
    )


def failed(**payload: Any) -> Any:
    event = devops_event(DevOpsEventKind.DEPLOYMENT_FAILED, state="completed", result="failed")
    return replace(event, payload={**event.payload, **payload})


def test_the_teams_decision_note_names_the_person() -> None:
    note = decision_note(False, "Olivia Operator (olivia@contoso.com)", "metrics look off")
    assert note == "Rejected in Teams by Olivia Operator (olivia@contoso.com): metrics look off"
    assert teams_decision(note) == ("Olivia Operator (olivia@contoso.com)", "metrics look off")
    assert teams_decision(decision_note(True, "Olivia Operator")) == ("Olivia Operator", "")
    assert teams_decision("Looks good to me") is None


def test_a_rejected_approval_of_the_stage_marks_the_failure_as_a_rejection() -> None:
    note = decision_note(False, "Olivia Operator", "not today")
    approvals = [
        approval("approved", "Deploy_Staging"),
        approval("rejected", "Deploy_Prod", note, by="mlbot service"),
    ]
    filled = with_rejection({"stage": "Deploy Prod", "decided_by": None}, approvals)
    assert filled["approval_status"] == "rejected"
    assert filled["approval_id"] == "id-Deploy_Prod-rejected"
    assert filled["decided_by"] == "Olivia Operator (in Teams)"
    assert filled["comment"] == "not today"
    # Rejected in Azure DevOps itself: its approver and comment as they are.
    direct = with_rejection({}, [approval("rejected", "Deploy_Prod", "no", by="Dana")])
    assert (direct["decided_by"], direct["comment"]) == ("Dana", "no")


def test_a_failure_without_a_rejected_approval_stays_a_failure() -> None:
    payload = {"stage": "Deploy Prod", "approval_status": None}
    assert with_rejection(payload, [approval("approved", "Deploy_Prod")]) == payload


def test_the_rejected_deployment_card_says_who_and_not_to_read_logs() -> None:
    event = failed(approval_status="rejected", decided_by="Olivia Operator (in Teams)")
    card = render_event_card(event)
    shown = str(card)
    assert card["body"][0]["text"] == "🚫 Deployment to prod rejected"
    assert "Olivia Operator (in Teams)" in shown
    assert "logs" not in shown and "failed" not in shown
    assert event_summary(event).startswith("🚫 Deployment to prod rejected by Olivia Operator")
    plain = render_event_card(failed())
    assert "logs in Azure DevOps say what went wrong" in str(plain)
