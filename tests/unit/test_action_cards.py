"""Cards with buttons and the answers that replace them (cards.actions, cards.welcome)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from bot.access import Actor
from cards.actions import (
    STOPPED_ICON,
    ApprovalDecision,
    ApprovalLine,
    render_action_done,
    render_approvals,
)
from cards.welcome import render_welcome_card

NOW = datetime(2026, 3, 17, 14, 30, tzinfo=UTC)


def line(approval_id: str, environment: str, decision: ApprovalDecision | None = None) -> Any:
    def signed(verb: str) -> dict[str, Any]:
        return {"approval_id": approval_id, "sig": f"{verb}-{approval_id}"}

    return ApprovalLine(
        approval_id=approval_id,
        pipeline="deployment-pipeline",
        run="20260317.4",
        stage=f"Deploy_{environment.title()}",
        environment=environment,
        instructions="",
        approve=None if decision else signed("approve"),
        reject=None if decision else signed("reject"),
        decision=decision,
    )


def verbs_by_approval(card: dict[str, Any]) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for row in (item for item in card["body"] if item["type"] == "Container"):
        for element in row["items"]:
            for action in element.get("actions", []):
                if action["type"] == "Action.Execute":
                    found.setdefault(action["data"]["approval_id"], set()).add(action["verb"])
    return found


def test_a_decided_row_shows_the_decision_and_the_other_rows_keep_their_buttons() -> None:
    rejected = ApprovalDecision(False, "Olivia Operator", NOW, "rejected")
    card = render_approvals([line("a1", "staging", rejected), line("a2", "prod")])
    assert card["body"][0]["text"] == "🛂 1 pending approval · 1 decided here"
    assert verbs_by_approval(card) == {"a2": {"approval.approve", "approval.reject"}}
    shown = json.dumps(card, ensure_ascii=False)
    assert "🚫 **Rejected** by Olivia Operator · 2026-03-17 14:30 UTC" in shown
    stages = [
        fact["value"]
        for row in card["body"][1:]
        for fact in row["items"][0]["facts"]
        if fact["title"] == "Stage"
    ]
    assert stages == ["Deploy\\_Staging", "Deploy\\_Prod"]


def test_a_stopped_action_is_not_a_success_and_keeps_its_evidence() -> None:
    evidence = [{"type": "TextBlock", "text": "Failed checks (UTC)"}]
    card = render_action_done(
        "Rollback of staging cancelled",
        [("Environment", "staging")],
        "Olivia Operator",
        NOW,
        icon=STOPPED_ICON,
        evidence=evidence,
    )
    assert card["body"][0]["text"] == "⏹ Rollback of staging cancelled"
    assert card["body"][-1] == evidence[0]
    assert "✅" not in json.dumps(card, ensure_ascii=False)


def test_the_personal_welcome_asks_for_no_mention() -> None:
    personal = json.dumps(render_welcome_card("Test Bot", "personal"), ensure_ascii=False)
    assert "Try **status** now, or **help** for every command." in personal
    assert "@" not in personal
    channel = json.dumps(render_welcome_card("Test Bot", "channel"), ensure_ascii=False)
    assert "**@Test Bot status**" in channel


def test_people_are_shown_by_name_and_written_to_azure_with_their_upn() -> None:
    named = Actor("00000000-aad-id", "olivia@contoso.com", "Olivia Operator", "tenant")
    assert named.display_name == "Olivia Operator"
    assert named.signature == "Olivia Operator (olivia@contoso.com)"
    assert named.label == "Olivia Operator (olivia@contoso.com)"  # the audit keeps ids
    no_upn = Actor("00000000-aad-id", None, "Olivia Operator", "tenant")
    assert no_upn.display_name == no_upn.signature == "Olivia Operator"
    assert Actor("00000000-aad-id", None, None, "tenant").display_name == "00000000-aad-id"
