"""Cards for acknowledgements, snoozes and silences."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from cards.actions import execute
from cards.common import Card, card, escape_markdown, facts, heading, text
from domain.attention import (
    ACKNOWLEDGE_VERB,
    ACKNOWLEDGEABLE_KINDS,
    REMINDER_KIND,
    SNOOZE_VERB,
    Acknowledgement,
    Silence,
    Snooze,
)
from domain.durations import format_duration
from domain.subscriptions import Subscription, describe, describe_filters

Sign = Callable[[str, dict[str, Any]], dict[str, Any]]
_SNOOZE_TITLES = (("1h", "1 hour"), ("4h", "4 hours"), ("end", "Until it ends"))


def attention_actions(
    kind: str, event_id: int, job: str | None, sign: Sign, ack: Acknowledgement | None
) -> list[dict[str, Any]]:
    """Acknowledge (until someone has), and Snooze choices on reminders; `sign` signs data."""
    if kind not in ACKNOWLEDGEABLE_KINDS or job is None or ack is not None:
        return []
    shared: dict[str, Any] = {"event_id": event_id, "job": job}
    acknowledge = execute(
        "Acknowledge", ACKNOWLEDGE_VERB, sign(ACKNOWLEDGE_VERB, shared), style="positive"
    )
    if kind != REMINDER_KIND:
        return [acknowledge]
    # Three snooze lengths beside Acknowledge would not fit a phone: they open under one.
    choices = [
        execute(title, SNOOZE_VERB, sign(SNOOZE_VERB, {**shared, "for": choice}))
        for choice, title in _SNOOZE_TITLES
    ]
    snooze = {
        "type": "Action.ShowCard",
        "title": "Snooze…",
        "card": {
            "type": "AdaptiveCard",
            "body": [text("Hold this job's reminders for:", size="Small")],
            "actions": choices,
        },
    }
    return [acknowledge, snooze]


def _clock(moment: datetime) -> str:
    return f"{moment:%H:%M} UTC"


def matchers_text(silence: Silence) -> str:
    """`failed (only circuits starting with PLANT002/)`, or `everything …` without kinds."""
    if silence.kinds:
        return describe(Subscription(silence.kinds, silence.filters))
    limits = describe_filters(silence.filters)
    return f"every kind ({limits})" if limits else "every kind"


def acknowledged_block(ack: Acknowledgement) -> dict[str, Any]:
    return text(
        f"👀 **{escape_markdown(ack.by)}** is on it (since {_clock(ack.at)}); "
        "further reminders for this job are held.",
        spacing="Medium",
    )


def snoozed_block(snooze: Snooze) -> dict[str, Any]:
    until = f"until {_clock(snooze.until)}" if snooze.until else "until the job ends"
    return text(
        f"😴 Reminders snoozed {until} by {escape_markdown(snooze.by)}.",
        spacing="Small",
        isSubtle=True,
    )


def with_attention(
    base: Card,
    ack: Acknowledgement | None,
    snooze: Snooze | None,
    actions: Sequence[dict[str, Any]],
) -> Card:
    """An event card as everyone sees it after someone took it or snoozed it."""
    body = list(base.get("body", []))
    if ack is not None:
        body.append(acknowledged_block(ack))
    if snooze is not None:
        body.append(snoozed_block(snooze))
    updated: Card = {**base, "body": body}
    if actions:
        updated["actions"] = list(actions)
    else:
        updated.pop("actions", None)
    return updated


def _silence_facts(silence: Silence, now: datetime) -> list[tuple[str, str]]:
    return [
        ("Holds", escape_markdown(matchers_text(silence))),
        ("Ends", f"{_clock(silence.ends_at)} (in {format_duration(silence.ends_at - now)})"),
        ("By", escape_markdown(silence.created_by)),
        ("Reason", escape_markdown(silence.reason) or "—"),
        ("Held so far", str(silence.held)),
    ]


def render_silence_created(silence: Silence, now: datetime) -> Card:
    return card(
        [
            heading(f"🔕 Silence #{silence.id} until {_clock(silence.ends_at)}"),
            facts(_silence_facts(silence, now)),
            text(
                "Matching events are recorded and counted but not posted; when the silence "
                f"ends nothing held is posted late. Type unsilence {silence.id} to end it now.",
                isSubtle=True,
            ),
        ]
    )


def render_silences(silences: Sequence[Silence], now: datetime) -> Card:
    if not silences:
        return card(
            [
                heading("🔔 No active silences"),
                text("Every event goes out as subscribed. Type silence … to hold some back."),
            ]
        )
    body: list[dict[str, Any]] = [heading(f"🔕 {len(silences)} active silence(s)")]
    for silence in silences:
        body.append(text(f"**#{silence.id}**", spacing="Medium", separator=True))
        body.append(facts(_silence_facts(silence, now)))
    body.append(text("Type unsilence and a number to end one now.", isSubtle=True))
    return card(body)


def render_silence_ended(silence: Silence, by: str) -> Card:
    return card(
        [
            heading(f"🔔 Silence #{silence.id} ended"),
            facts(
                [
                    ("Held", escape_markdown(matchers_text(silence))),
                    ("Ended by", escape_markdown(by)),
                    ("Events it held", str(silence.held)),
                ]
            ),
            text("Events from now on go out as subscribed; held ones stay unposted."),
        ]
    )
