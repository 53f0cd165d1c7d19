"""Cards for Azure DevOps deployments and approvals (schema checks live in test_event_cards)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cards.events import MAX_LISTED, event_summary, render_event_card
from service.devops_hooks import DevOpsEventKind
from tests.unit.test_event_cards import devops_event

RUN_URL = "https://dev.azure.com/org/proj/_build/results?buildId=4242"


def content(card: dict[str, Any]) -> str:
    return json.dumps(card, ensure_ascii=False)


def heading_of(card: dict[str, Any]) -> str:
    return str(card["body"][0]["text"])


def facts_of(card: dict[str, Any]) -> dict[str, str]:
    found: dict[str, str] = {}
    for element in card["body"]:
        if element["type"] == "FactSet":
            found.update({fact["title"]: fact["value"] for fact in element["facts"]})
    return found


@pytest.mark.parametrize(
    ("result", "heading", "summary"),
    [
        ("succeeded", "✅ Deployment to prod completed", "✅ Deployment to prod completed"),
        (
            "partiallySucceeded",
            "⚠️ Deployment to prod partially succeeded",
            "⚠️ Deployment to prod partially succeeded",
        ),
    ],
)
def test_deployment_completed(result: str, heading: str, summary: str) -> None:
    event = devops_event(DevOpsEventKind.DEPLOYMENT_COMPLETED, state="completed", result=result)
    card = render_event_card(event)
    assert heading_of(card) == heading
    assert event_summary(event) == f"{summary} (deployment-pipeline #20261129.3)"
    facts = facts_of(card)
    assert facts["Run"] == f"[#20261129.3]({RUN_URL})"
    assert facts["Environment"] == "prod"
    assert facts["Result"] in ("Succeeded", "Partially succeeded")
    assert card["actions"] == [
        {"type": "Action.OpenUrl", "title": "Open pipeline run", "url": RUN_URL}
    ]


@pytest.mark.parametrize(
    ("result", "heading"),
    [
        ("failed", "❌ Deployment to prod failed"),
        ("canceled", "❌ Deployment to prod canceled"),
        ("rejected", "❌ Deployment to prod rejected"),
    ],
)
def test_deployment_failed_links_the_run_and_offers_a_rollback(result: str, heading: str) -> None:
    event = devops_event(DevOpsEventKind.DEPLOYMENT_FAILED, state="completed", result=result)
    card = render_event_card(event)
    assert heading_of(card) == heading
    assert "`@mlbot rollback prod`" in content(card)
    assert card["actions"][0]["url"] == RUN_URL


def test_failed_rollback_does_not_suggest_another_rollback() -> None:
    event = devops_event(
        DevOpsEventKind.DEPLOYMENT_FAILED,
        pipeline="rollback-pipeline",
        stage=None,
        result="failed",
        rollback=True,
    )
    card = render_event_card(event)
    assert heading_of(card) == "❌ Rollback of prod failed"
    assert "@mlbot rollback" not in content(card)


def test_deployment_without_environment_or_link() -> None:
    event = devops_event(
        DevOpsEventKind.DEPLOYMENT_FAILED,
        environment=None,
        stage=None,
        run_name=None,
        web_url="http://tfs.local/build/1",
        result="failed",
    )
    card = render_event_card(event)
    assert heading_of(card) == "❌ Deployment failed"
    assert "actions" not in card
    assert facts_of(card)["Run"] == "#4242"
    assert "@mlbot rollback" not in content(card)
    assert event_summary(event) == "❌ Deployment failed (deployment-pipeline #4242)"


def test_hostile_names_are_escaped() -> None:
    event = devops_event(
        DevOpsEventKind.DEPLOYMENT_FAILED,
        pipeline="[click](https://evil.example)",
        environment="prod *now*",
        stage="Deploy_`x`",
        result="failed",
    )
    text = content(render_event_card(event))
    assert "\\\\[click\\\\](https://evil.example)" in text
    assert "prod \\\\*now\\\\*" in text
    assert "@mlbot rollback" not in text  # not a name the command accepts


def test_approval_required_card() -> None:
    event = devops_event(
        DevOpsEventKind.APPROVAL_REQUIRED,
        approval_id="a-1",
        approval_status="pending",
        approvers=tuple(f"Approver {n}" for n in range(MAX_LISTED + 5)),
        min_approvers=2,
        instructions="Check *offline* metrics first.",
    )
    card = render_event_card(event)
    assert heading_of(card) == "🔐 Approval required — deployment to prod"
    facts = facts_of(card)
    assert facts["Approvers"].endswith("and 5 more")
    assert facts["Needs"] == "2 approvals"
    assert facts["Stage"] == "Deploy\\_Prod"
    assert "Check \\*offline\\* metrics first." in [b.get("text") for b in card["body"]]
    assert card["actions"] == [
        {"type": "Action.OpenUrl", "title": "Review in Azure DevOps", "url": RUN_URL}
    ]
    summary = "🔐 Approval required: deployment to prod (deployment-pipeline #20261129.3)"
    assert event_summary(event) == summary


def test_approval_required_with_the_documented_nulls() -> None:
    event = devops_event(
        DevOpsEventKind.APPROVAL_REQUIRED,
        pipeline=None,
        pipeline_id=None,
        run_name=None,
        stage=None,
        run_id=2,
        approval_id="a-1",
        approval_status="pending",
    )
    card = render_event_card(event, version="1.4")
    assert heading_of(card) == "🔐 Approval required — deployment to prod"
    assert set(facts_of(card)) == {"Run", "Environment"}
    assert event_summary(event) == "🔐 Approval required: deployment to prod (#2)"


@pytest.mark.parametrize(
    ("status", "by", "heading", "summary"),
    [
        ("approved", "Ana Lima", "✅ Approved — deployment to prod", "✅ Approved by Ana Lima"),
        ("rejected", "Ben Ode", "🚫 Rejected — deployment to prod", "🚫 Rejected by Ben Ode"),
        ("timedOut", None, "⌛ Approval timed out — deployment to prod", "⌛ Approval timed out"),
        ("canceled", None, "⏹ Approval canceled — deployment to prod", "⏹ Approval canceled"),
    ],
)
def test_approval_decided(status: str, by: str | None, heading: str, summary: str) -> None:
    event = devops_event(
        DevOpsEventKind.APPROVAL_DECIDED,
        approval_id="a-1",
        approval_status=status,
        decided_by=by,
        comment="Numbers look right." if by else None,
    )
    card = render_event_card(event)
    assert heading_of(card) == heading
    assert event_summary(event) == f"{summary}: deployment to prod"
    if by:
        assert facts_of(card)["By"] == by
        assert "Numbers look right." in content(card)
