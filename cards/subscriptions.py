"""The `subscriptions` card: what a conversation is notified of, editable in place.

One toggle per event kind and one text box per filter; Save is an `Action.Execute` whose
answer is this card again, showing what was saved. People who may not change the
conversation's subscriptions see the same facts without inputs or a Save button.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cards.actions import execute
from cards.common import Card, card, escape_markdown, facts, heading, text
from cards.help import CommandHelp
from domain.subscriptions import (
    CIRCUIT,
    DEFAULT_KINDS,
    ENVIRONMENT,
    EXPERIMENT,
    KINDS,
    Subscription,
    SubscriptionFilters,
    describe_filters,
    toggle_id,
)

SAVE_VERB = "subscriptions.save"

# What `help` says about the subscription commands (the bot registers them with these words).
SUBSCRIBE_HELP = CommandHelp(
    "subscribe [kinds] [experiment=X] [circuit=PREFIX] [env=ENV]",
    "Choose what is posted here: kinds such as failed, reminders, approvals "
    "(or all), with experiment, circuit or env filters.",
)
UNSUBSCRIBE_HELP = CommandHelp(
    "unsubscribe [kinds|all]",
    "Stop posting these event kinds here (nothing or **all**: stop everything).",
)
SUBSCRIPTIONS_HELP = CommandHelp("subscriptions", "What is posted here, on a card to change it.")
SUBSCRIPTION_COMMANDS = (SUBSCRIBE_HELP, UNSUBSCRIBE_HELP, SUBSCRIPTIONS_HELP)

_WHERE = {"channel": "this channel", "groupChat": "this chat", "personal": "your personal chat"}
_FILTER_INPUTS = (
    (EXPERIMENT, "Only these experiments", "circuit-training, anomaly-training"),
    (CIRCUIT, "Only circuits starting with", "PLANT001/ or PLANT001/CIRCUIT0"),
    (ENVIRONMENT, "Only these environments (deployments, approvals, rollbacks)", "prod"),
)


@dataclass(frozen=True, slots=True)
class SubscriptionsView:
    subscription: Subscription
    conversation_type: str | None
    # Signed data of the Save button; None when the viewer may not change anything.
    save: dict[str, Any] | None = None
    updated_by: str | None = None
    updated_at: datetime | None = None
    notice: str | None = None  # "Saved." or why nothing was saved
    notice_is_error: bool = False
    # What was typed, kept on the card when it could not be saved.
    typed: dict[str, str] | None = None


def where(conversation_type: str | None) -> str:
    return _WHERE.get(conversation_type or "", "this conversation")


def _filter_text(subscription: Subscription, key: str) -> str:
    return ", ".join(subscription.filters.values(key))


def render_subscriptions_card(view: SubscriptionsView) -> Card:
    sub = view.subscription
    body: list[dict[str, Any]] = [heading(f"🔔 Notifications for {where(view.conversation_type)}")]
    if view.notice:
        body.append(
            text(
                escape_markdown(view.notice),
                weight="Bolder",
                color="Attention" if view.notice_is_error else "Good",
            )
        )
    if not sub.kinds:
        body.append(text("Nothing is posted here yet. Turn on what you want to hear about."))
    if view.save is None:
        return _read_only(view, body)

    body.append(text("Post a card here when:", weight="Bolder"))
    typed = view.typed or {}
    for info in KINDS:
        body.append(
            {
                "type": "Input.Toggle",
                "id": toggle_id(info.name),
                "title": info.label,
                "value": typed.get(toggle_id(info.name))
                or ("true" if info.name in sub.kinds else "false"),
                "valueOn": "true",
                "valueOff": "false",
                "wrap": True,  # long labels are cut with "…" otherwise
            }
        )
    body.append(
        text(
            "Filters (empty: everything). Several values: separate them with commas. "
            "A filter leaves alone the events it does not apply to.",
            isSubtle=True,
            separator=True,
        )
    )
    for key, label, placeholder in _FILTER_INPUTS:
        body.append(
            {
                "type": "Input.Text",
                "id": key,
                "label": label,
                "placeholder": placeholder,
                "value": typed.get(key, _filter_text(sub, key)),
                "maxLength": 500,
            }
        )
    _changed(view, body)
    return card(body, actions=[execute("Save", SAVE_VERB, view.save, style="positive")])


def _read_only(view: SubscriptionsView, body: list[dict[str, Any]]) -> Card:
    sub = view.subscription
    rows = [(info.label, "✅ on" if info.name in sub.kinds else "— off") for info in KINDS]
    body.append(facts(rows))
    limits = describe_filters(sub.filters)
    if limits:
        body.append(text(escape_markdown(limits.capitalize() + ".")))
    _changed(view, body)
    body.append(text("Operators can change what this conversation receives.", isSubtle=True))
    return card(body)


def _changed(view: SubscriptionsView, body: list[dict[str, Any]]) -> None:
    if view.updated_by and view.updated_at:
        stamp = view.updated_at.strftime("%Y-%m-%d %H:%M UTC")
        body.append(
            text(f"Last changed by {escape_markdown(view.updated_by)}, {stamp}.", isSubtle=True)
        )


def subscription_sample_cards(now: datetime) -> dict[str, Card]:
    """The subscriptions card in its shapes, for the card catalog."""
    save = {"verb": SAVE_VERB, "data": {"conversation": "19:general"}, "sig": "sample-signature"}
    narrowed = Subscription.of(
        ("training_failed", "long_running", "approval_required", "deployment_failed"),
        SubscriptionFilters(
            experiments=("circuit-training",),
            circuit_prefixes=("PLANT001/", "PLANT002/CIRCUIT0"),
            environments=("prod",),
        ),
    )
    return {
        "subscriptions-channel": render_subscriptions_card(
            SubscriptionsView(Subscription.of(DEFAULT_KINDS), "channel", save=save)
        ),
        "subscriptions-saved": render_subscriptions_card(
            SubscriptionsView(
                narrowed,
                "channel",
                save=save,
                updated_by="Ada Lovelace (ada@contoso.com)",
                updated_at=now,
                notice="Saved.",
            )
        ),
        "subscriptions-read-only": render_subscriptions_card(
            SubscriptionsView(
                narrowed, "channel", updated_by="Ada Lovelace (ada@contoso.com)", updated_at=now
            )
        ),
        "subscriptions-personal-empty": render_subscriptions_card(
            SubscriptionsView(Subscription(), "personal", save=save)
        ),
        "subscriptions-invalid": render_subscriptions_card(
            SubscriptionsView(
                Subscription.of(DEFAULT_KINDS),
                "groupChat",
                save=save,
                notice="Nothing saved: 'PLANT 1' is not a valid circuit filter.",
                notice_is_error=True,
                typed={CIRCUIT: "PLANT 1", toggle_id("training_started"): "true"},
            )
        ),
    }
