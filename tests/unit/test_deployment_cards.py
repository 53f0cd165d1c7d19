"""Cards for deployments, approvals and the deployment health watch (schema checks live in
test_event_cards)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from cards.common import without_charts
from cards.events import MAX_LISTED, event_summary, render_event_card
from sandbox.card_catalog import SAMPLE_NOW, sample_events
from service.devops_hooks import DevOpsEventKind
from store.monitoring import EventRecord
from tests.card_charts import chart_errors, charts_in
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
    assert "**rollback prod**" in content(card)
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
    assert "**rollback " not in content(card)


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
    assert "**rollback " not in content(card)
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
    assert "**rollback " not in text  # not a name the command accepts


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


# --- the deployment health watch --------------------------------------------------------------

BARS = "▁▂▃▄▅▆▇█"


def health_sample(name: str, **changes: Any) -> EventRecord:
    """A catalog sample (the fields the watcher stores), with some payload fields changed."""
    sample = sample_events(SAMPLE_NOW)[name]
    return replace(sample, payload={**sample.payload, **changes})


def chart_of(card: dict[str, Any]) -> dict[str, Any]:
    [chart] = [element for element in card["body"] if element["type"] == "Container"]
    return chart


def chart_rows(card: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each text row's bars (the monospace TextBlock) by the label in the line above it,
    as a host without Teams' charts (iOS, Workflows cards) draws the card."""
    items = json.dumps(chart_of(without_charts(card)))
    rows = {}
    for row in _containers(json.loads(items)):
        above, bars = row["items"]
        rows[above["text"].split("**")[1]] = bars
    return rows


def _containers(node: Any) -> list[dict[str, Any]]:
    found = []
    if isinstance(node, dict):
        items = node.get("items")
        if (
            node.get("type") == "Container"
            and isinstance(items, list)
            and len(items) == 2
            and items[1].get("fontType") == "Monospace"
        ):
            found.append(node)
        for value in node.values():
            found += _containers(value)
    elif isinstance(node, list):
        for item in node:
            found += _containers(item)
    return found


def charts_of(card: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Teams' chart elements of the card by type."""
    return {chart["type"]: chart for chart in charts_in(card["body"])}


def point(minute: int, rate: float | None, latency: float | None, requests: float = 120) -> Any:
    at = SAMPLE_NOW - timedelta(minutes=60) + timedelta(minutes=minute)
    return {
        "at": at.isoformat(),
        "requests": requests,
        "errors_5xx": None if rate is None else rate * requests / 100,
        "error_rate_percent": rate,
        "latency_ms": latency,
    }


@pytest.mark.parametrize("version", ["1.4", "1.5"])
def test_rollback_pending_shows_figures_thresholds_and_the_chart(version: str) -> None:
    event = health_sample("rollback-pending")
    card = render_event_card(event, version=version)
    assert heading_of(card) == "🚨 circuits-prod / blue in prod is unhealthy — rolling back"
    facts = facts_of(card)
    assert facts["Thresholds"] == (
        "error rate > 5 % or P95 latency > 2000 ms, 3 checks in a row (min. 20 requests per check)"
    )
    assert facts["Rollback at"] == "2026-03-17 14:30 UTC (in 2m 00s)"
    # The breaching figures of each failed check, as the watcher judged them.
    assert (
        facts["14:24"]
        == "error rate 7.4 % > 5 % (9 of 122 requests); P95 latency 2150 ms > 2000 ms"
    )
    assert set(facts) >= {"14:25", "14:26"}
    rows = chart_rows(card)
    assert list(rows) == ["Error rate", "P95 latency"]
    # 28 minutes, one bar each: quiet at the bottom, then the climb to the peak.
    errors = rows["Error rate"]["text"]
    assert errors == "▁" * 24 + "▂▄▆█"
    assert rows["P95 latency"]["text"].endswith("▁▄▇██")
    assert rows["Error rate"]["color"] == rows["P95 latency"]["color"] == "Attention"
    text = content(chart_of(card))
    assert "now 16.1 % · peak 16.1 % · limit 5 %" in text
    # The caption says what is drawn: 28 minutes, 28 bars, ending with the last check.
    assert "Last 28 minutes" in text
    assert "13:58 to 14:26 UTC · 28 bars, one per minute" in text
    # Traffic is figures, not a solid block of full bars.
    assert "**Requests** · now 124/min · 118 to 133/min in the window" in text
    assert "unless an approver cancels it" in content(card)
    assert "actions" not in card  # the bot adds the signed Cancel button (bot.notifiers)
    assert event_summary(event) == "🚨 circuits-prod / blue in prod unhealthy: rollback pending"


def test_bot_cards_draw_teams_charts_with_fallbacks_and_webhook_cards_text() -> None:
    event = health_sample("rollback-pending")
    assert charts_of(render_event_card(event, version="1.4")) == {}
    card = render_event_card(event, version="1.5")
    assert not chart_errors(card)
    charts = charts_of(card)
    assert set(charts) == {"Chart.VerticalBar", "Chart.Line"}
    bars = charts["Chart.VerticalBar"]["data"]
    assert len(bars) == 28
    # Each bar is labelled with the end of its minute: the last is the last failed check.
    assert [bar["x"] for bar in bars[:1] + bars[-1:]] == ["13:59", "14:26"]
    assert [bar["color"] for bar in bars[-3:]] == ["attention"] * 3
    assert bars[0] == {"x": "13:59", "y": 0.85, "color": "good"}
    latency, limit = charts["Chart.Line"]["data"]
    assert latency["legend"] == "P95 latency"
    assert latency["values"][-1] == {"x": "14:26", "y": 2710.0}
    assert {p["y"] for p in limit["values"]} == {2000.0}
    assert "limit 2000 ms" in charts["Chart.Line"]["title"]
    # Where charts are not drawn the same figures read as a row of bars.
    assert charts["Chart.VerticalBar"]["fallback"]["fontType"] == "Monospace"
    assert charts["Chart.VerticalBar"]["fallback"]["text"] == "▁" * 24 + "▂▄▆█"


@pytest.mark.parametrize(
    "name", ["rollback-queued", "rollback-dry-run", "rollback-failed", "rollback-cancelled"]
)
def test_rollback_outcomes_repeat_the_evidence(name: str) -> None:
    card = render_event_card(health_sample(name))
    assert "Failed checks (UTC)" in content(card)
    assert list(chart_rows(card)) == ["Error rate", "P95 latency"]
    # The pipeline's reason repeats the last check, so it is not shown twice.
    assert "Reason" not in facts_of(card)


def test_rollback_queued_links_the_run() -> None:
    card = render_event_card(health_sample("rollback-queued"))
    assert heading_of(card) == "⏪ Rollback queued — circuits-prod / blue in prod"
    url = "https://dev.azure.com/contoso-ml/mlops/_build/results?buildId=20233"
    assert facts_of(card)["Run"] == f"[#20233]({url})"
    assert card["actions"] == [{"type": "Action.OpenUrl", "title": "Open pipeline run", "url": url}]


def test_dry_run_shows_the_run_it_would_queue() -> None:
    card = render_event_card(health_sample("rollback-dry-run"))
    facts = facts_of(card)
    assert facts["Would queue"] == "rollback-pipeline"
    assert facts["Parameters"] == "environment=prod, endpoint=circuits-prod, deployment=blue"
    assert "Nothing was queued" in content(card)


def test_rows_without_the_evidence_show_the_reason() -> None:
    event = health_sample("rollback-queued", checks=None, points=None, thresholds=None)
    card = render_event_card(event)
    assert facts_of(card)["Reason"].startswith("automatic rollback: 3 failed health checks")
    assert all(element["type"] != "Container" for element in card["body"])


def test_held_rollback_names_the_one_in_progress() -> None:
    card = render_event_card(health_sample("rollback-skipped"))
    assert heading_of(card) == "⚠️ circuits-prod-eu / blue in prod is unhealthy — rollback held"
    assert facts_of(card)["Held by"] == "prod/circuits-prod/blue/20231 (run #20233)"


def test_healthy_deployment_has_a_calm_chart() -> None:
    card = render_event_card(health_sample("deployment-healthy"))
    assert heading_of(card) == "💚 circuits-prod / green in prod is healthy"
    rows = chart_rows(card)
    # Scaled to the limit and well below it: low bars only, nothing in red.
    for label in ("Error rate", "P95 latency"):
        assert max(BARS.index(bar) for bar in rows[label]["text"]) <= 2
        assert len(rows[label]["text"]) == 32
    assert all("color" not in row for row in rows.values())
    # The 30-minute window and the two minutes before it, a bar each.
    assert "12:58 to 13:30 UTC · 32 bars, one per minute" in content(card)
    assert {bar["color"] for bar in charts_of(card)["Chart.VerticalBar"]["data"]} == {"good"}


def test_a_short_breach_survives_two_minute_bars() -> None:
    points = [point(n, 0.5, 200) for n in range(60)]
    points[31] = point(31, 40.0, 200)  # one bad minute, shares a bar with a good one
    card = render_event_card(health_sample("deployment-healthy", points=points))
    errors = chart_rows(card)["Error rate"]["text"]
    assert len(errors) == 30
    assert errors[15] == "█"
    assert errors.count("▁") == 29
    text = content(chart_of(card))
    assert "Last 60 minutes" in text
    assert "30 bars, one per 2 minutes" in text
    assert len(charts_of(card)["Chart.VerticalBar"]["data"]) == 30


def test_missing_minutes_are_gaps_not_squeezed_out() -> None:
    points = [point(n, 0.5, 200) for n in (0, 1, 2, 6, 7, 8, 9)]
    points.append(point(10, None, None, requests=0))  # no traffic at all
    card = render_event_card(health_sample("rollback-pending", points=points))
    rows = chart_rows(card)
    # 11 minutes, a character each; minutes 3-5 were never measured.
    assert rows["Error rate"]["text"] == "▁▁▁···▁▁▁▁·"
    assert "· no data" in content(chart_of(card))
    # The chart draws no bar for an unmeasured minute (rather than a bar at zero).
    assert len(charts_of(card)["Chart.VerticalBar"]["data"]) == 7


def test_bars_are_scaled_to_the_limit() -> None:
    points = [point(n, rate, 1000) for n, rate in enumerate([0, 2.5, 5.0, 10.0])]
    card = render_event_card(health_sample("rollback-pending", points=points))
    assert chart_rows(card)["Error rate"]["text"] == "▁▃▅█"
    latency = chart_rows(card)["P95 latency"]
    assert latency["text"] == "▅" * 4  # half the 2000 ms limit
    assert "color" not in latency


def test_health_cards_escape_names() -> None:
    event = health_sample(
        "rollback-cancelled", endpoint="[x](https://evil.example)", cancelled_by="*Eve*"
    )
    card = render_event_card(event)
    assert "\\[x\\](https://evil.example)" in heading_of(card)
    assert facts_of(card)["Cancelled by"] == "\\*Eve\\*"
    assert (
        event_summary(event)
        == "⏹ Rollback of [x](https://evil.example) / blue in prod cancelled by *Eve*"
    )


@pytest.mark.parametrize(
    ("name", "summary"),
    [
        ("rollback-queued", "⏪ Rollback queued for circuits-prod / blue in prod (#20233)"),
        ("rollback-dry-run", "📝 Rollback of circuits-prod / blue in prod not queued (dry run)"),
        (
            "rollback-cancelled",
            "⏹ Rollback of circuits-prod / blue in prod cancelled by Dana Whitfield",
        ),
        ("rollback-failed", "❌ Could not queue the rollback of circuits-prod / blue in prod"),
        ("health-inconclusive", "❓ Cannot judge the health of circuits-prod / blue in prod"),
        ("deployment-healthy", "💚 circuits-prod / green in prod is healthy"),
    ],
)
def test_health_summaries(name: str, summary: str) -> None:
    assert event_summary(health_sample(name)) == summary


def test_inconclusive_card_says_why_and_until_when() -> None:
    card = render_event_card(health_sample("health-inconclusive"))
    facts = facts_of(card)
    assert facts["Checks"] == "4 in a row could not be measured"
    assert facts["Reason"].startswith("metrics unavailable")
    assert facts["Watch ends"] == "2026-03-17 14:30 UTC"
    assert "No automatic rollback follows" in content(card)
