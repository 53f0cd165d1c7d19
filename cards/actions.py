"""Cards with buttons: confirmations, the approvals list, and the answers that replace them.

Buttons are `Action.Execute` (Universal Actions, card version 1.5). Their `data` arrives
here already signed by the bot; a card only places it. Teams clients without Universal
Actions draw each button's `fallback`, an `Action.Submit` carrying the same data and the
verb under `FALLBACK_VERB_FIELD`; the bot receives it as a message with a `value`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cards.common import Card, card, escape_markdown, facts, heading, text

FALLBACK_VERB_FIELD = "mlbotVerb"


def execute(
    title: str, verb: str, data: dict[str, Any], *, style: str = "default"
) -> dict[str, Any]:
    submit: dict[str, Any] = {
        "type": "Action.Submit",
        "title": title,
        "data": {**data, FALLBACK_VERB_FIELD: verb},
    }
    action: dict[str, Any] = {
        "type": "Action.Execute",
        "title": title,
        "verb": verb,
        "data": data,
        "fallback": submit,
    }
    if style != "default":
        action["style"] = style
        submit["style"] = style
    return action


def submitted_action(value: Any) -> tuple[str, dict[str, Any]] | None:
    """The verb and data of a pressed fallback button (a message's `value`), else None."""
    if not isinstance(value, dict) or not isinstance(value.get(FALLBACK_VERB_FIELD), str):
        return None
    data = {k: v for k, v in value.items() if k != FALLBACK_VERB_FIELD}
    return value[FALLBACK_VERB_FIELD], data


def _stamp(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M UTC")


def render_retry_confirmation(
    circuits: Sequence[str],
    pipeline: str,
    confirm: dict[str, Any],
    cancel: dict[str, Any],
    requested_by: str,
) -> Card:
    listed = "\n".join(f"- {escape_markdown(c)}" for c in circuits)
    return card(
        [
            heading("🔁 Retry training?"),
            text(f"This queues **{escape_markdown(pipeline)}** once with these circuits:"),
            text(listed),
            facts([("manualCircuits", ",".join(circuits)), ("Asked by", requested_by)]),
        ],
        actions=[
            execute("Queue the retry", "retry.confirm", confirm, style="positive"),
            execute("Cancel", "action.cancel", cancel),
        ],
    )


def render_rollback_confirmation(
    environment: str,
    reason: str,
    pipeline: str,
    confirm: dict[str, Any],
    cancel: dict[str, Any],
    requested_by: str,
) -> Card:
    body = [
        heading(f"⏪ Roll back {escape_markdown(environment)}?"),
        text(
            f"This queues **{escape_markdown(pipeline)}** for "
            f"**{escape_markdown(environment)}**. The previous deployment is restored."
        ),
        facts(
            [
                ("Environment", escape_markdown(environment)),
                ("Reason", escape_markdown(reason) or "—"),
                ("Asked by", requested_by),
            ]
        ),
    ]
    return card(
        body,
        actions=[
            execute(f"Roll back {environment}", "rollback.confirm", confirm, style="destructive"),
            execute("Cancel", "action.cancel", cancel),
        ],
    )


@dataclass(frozen=True, slots=True)
class ApprovalDecision:
    """What became of one approval on the list: shown in its row instead of its buttons."""

    approved: bool
    by: str
    at: datetime
    status: str = ""  # Azure DevOps' status after the decision


@dataclass(frozen=True, slots=True)
class ApprovalLine:
    approval_id: str
    pipeline: str
    run: str
    stage: str
    environment: str
    instructions: str
    approve: dict[str, Any] | None
    reject: dict[str, Any] | None
    url: str | None = None
    decision: ApprovalDecision | None = None


def _decision_text(decision: ApprovalDecision) -> dict[str, Any]:
    verb = "Approved" if decision.approved else "Rejected"
    icon = "✅" if decision.approved else "🚫"
    return text(
        f"{icon} **{verb}** by {escape_markdown(decision.by)} · {_stamp(decision.at)}",
        color="Good" if decision.approved else "Attention",
    )


def _approval_heading(lines: Sequence[ApprovalLine]) -> str:
    waiting = sum(1 for line in lines if line.decision is None)
    decided = len(lines) - waiting
    title = f"🛂 {waiting} pending approval{'s' if waiting != 1 else ''}"
    return title + (f" · {decided} decided here" if decided else "")


def render_approvals(lines: Sequence[ApprovalLine], limit: int = 10) -> Card:
    """The approvals list; a row decided from this card shows the decision, the other
    rows keep their buttons (a decision never takes the rest of the list away)."""
    if not lines:
        return card([heading("✅ No pending approvals"), text("Nothing is waiting for you.")])
    body: list[dict[str, Any]] = [heading(_approval_heading(lines))]
    for line in lines[:limit]:
        rows = [
            ("Pipeline", escape_markdown(line.pipeline)),
            ("Run", escape_markdown(line.run) or "—"),
            ("Stage", escape_markdown(line.stage) or "—"),
            ("Environment", escape_markdown(line.environment) or "—"),
        ]
        container: dict[str, Any] = {
            "type": "Container",
            "separator": True,
            "items": [facts(rows)],
        }
        if line.instructions:
            container["items"].append(text(escape_markdown(line.instructions), isSubtle=True))
        buttons: list[dict[str, Any]] = []
        if line.decision is not None:
            container["items"].append(_decision_text(line.decision))
        elif line.approve is not None and line.reject is not None:
            buttons += [
                execute("Approve", "approval.approve", line.approve, style="positive"),
                execute("Reject", "approval.reject", line.reject, style="destructive"),
            ]
        if line.url and line.url.startswith("https://"):
            buttons.append({"type": "Action.OpenUrl", "title": "Open run", "url": line.url})
        if buttons:
            container["items"].append({"type": "ActionSet", "actions": buttons})
        body.append(container)
    if len(lines) > limit:
        body.append(text(f"…and {len(lines) - limit} more in Azure DevOps.", isSubtle=True))
    return card(body)


# The mark of an answer that stopped something: neither a success nor a problem.
STOPPED_ICON = "⏹"


def render_action_done(
    title: str,
    lines: Sequence[tuple[str, str]],
    actor: str,
    at: datetime,
    *,
    ok: bool = True,
    icon: str | None = None,
    evidence: Sequence[dict[str, Any]] = (),
) -> Card:
    """What replaces a card once someone acted on it: who did what, when; no buttons left.

    `evidence` (elements of the card acted on, e.g. a health alert's figures and chart)
    is kept below the answer, so the reasons for the decision stay on the card.
    """
    icon = icon or ("✅" if ok else "⚠️")
    return card(
        [
            heading(f"{icon} {title}"),
            facts([*lines, ("By", actor), ("At", _stamp(at))]),
            *evidence,
        ]
    )


def render_action_working(actor: str, at: datetime) -> Card:
    """The answer to a button whose work is still under way (Azure DevOps is slow)."""
    return card(
        [
            heading("⏳ Working on it"),
            text(
                "Azure DevOps is taking a while to answer. This card will show the outcome "
                "as soon as it does; there is no need to press again.",
            ),
            facts([("By", actor), ("At", _stamp(at))]),
        ]
    )


def render_action_refused(reason: str) -> Card:
    return card([heading("🚫 Not done"), text(reason)])
