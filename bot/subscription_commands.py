"""`subscribe`, `unsubscribe`, `subscriptions` and the Save button of the subscriptions card.

Anyone may look at what a conversation receives. Changing it needs an operator in a team
channel or group chat (everyone there gets the cards) and nobody special in someone's own
personal chat. Every change, allowed or refused, lands in the audit trail.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from botbuilder.core import TurnContext

from bot.access import AccessPolicy, Actor, decide
from bot.card_actions import ActionRegistry, ActionTurn
from bot.card_signing import CardSigner
from bot.chat import ChatTurn
from bot.command_catalog import CARD_ACTIONS, COMMANDS
from bot.commands import CommandError, CommandRegistry
from bot.turns import TurnFacts
from cards.common import Card
from cards.subscriptions import (
    SAVE_VERB,
    SubscriptionsView,
    render_subscriptions_card,
    where,
)
from domain.subscriptions import (
    Subscription,
    SubscriptionInputError,
    apply_subscribe,
    apply_unsubscribe,
    describe,
    parse_subscribe,
    parse_unsubscribe,
    subscription_from_inputs,
)
from store.audit import AuditTrail
from store.conversations import ConversationRecord, ConversationStore, StoredSubscription


class SubscriptionServices(Protocol):
    """What these handlers use of the chat services."""

    @property
    def signer(self) -> CardSigner: ...
    @property
    def policy(self) -> Callable[[], AccessPolicy]: ...
    @property
    def audit(self) -> AuditTrail: ...
    @property
    def conversations(self) -> ConversationStore | None: ...


def conversation_key(conversation_id: str) -> str:
    """The conversation a subscription belongs to: a channel, not one thread of it.

    Teams gives a message in a channel thread the id `19:…@thread.tacv2;messageid=…`;
    notifications go to the channel itself.
    """
    return conversation_id.split(";messageid=", 1)[0]


@dataclass(frozen=True, slots=True)
class _Where:
    conversation_id: str
    conversation_type: str | None

    @property
    def personal(self) -> bool:
        return self.conversation_type == "personal"


def _where(facts: TurnFacts) -> _Where:
    return _Where(conversation_key(facts.conversation_id), facts.conversation_type)


def register_subscription_commands(
    registry: CommandRegistry[ChatTurn],
    actions: ActionRegistry,
    services: SubscriptionServices,
) -> None:
    def store() -> ConversationStore:
        conversations = services.conversations
        if conversations is None:
            raise CommandError("Subscriptions are not available on this bot.")
        return conversations

    def may_change(actor: Actor, facts: TurnFacts) -> bool:
        # Whether the card shows Save: the permission that button is declared with.
        action = CARD_ACTIONS.subscriptions_save.permission.action
        return decide(services.policy(), actor, action, personal=_where(facts).personal).allowed

    async def changed(
        turn: ChatTurn | ActionTurn, action: str, before: Subscription, after: Subscription
    ) -> None:
        """Store `after` and audit the change. A conversation the bot never saw installed
        (another channel of the team, a chat Teams did not announce) is remembered from
        this turn first."""
        here = _where(turn.facts)
        by = turn.actor.label
        if not await store().save_subscription(here.conversation_id, after, by=by, now=turn.now):
            record = _record_of(turn.context, turn.facts, here, turn.now)
            await store().remember(record, Subscription())
            await store().save_subscription(here.conversation_id, after, by=by, now=turn.now)
        await services.audit.record(
            turn.actor.audit_entry(
                at=turn.now,
                action=action,
                outcome="ok",
                conversation_id=turn.facts.conversation_id,
                target=here.conversation_id,
                detail=f"{describe(before)} -> {describe(after)}"[:2000],
            )
        )

    async def current(conversation_id: str) -> Subscription:
        stored = await store().subscription(conversation_id)
        return stored.subscription if stored is not None else Subscription()

    def view(
        facts: TurnFacts,
        actor: Actor,
        stored: StoredSubscription | None,
        **extra: Any,
    ) -> SubscriptionsView:
        here = _where(facts)
        save = (
            services.signer.sign(SAVE_VERB, {"conversation": here.conversation_id})
            if may_change(actor, facts)
            else None
        )
        return SubscriptionsView(
            subscription=stored.subscription if stored is not None else Subscription(),
            conversation_type=here.conversation_type,
            save=save,
            updated_by=stored.updated_by if stored is not None else None,
            updated_at=stored.updated_at if stored is not None else None,
            **extra,
        )

    @registry.handles(COMMANDS.subscribe)
    async def subscribe(turn: ChatTurn, args: str) -> None:
        try:
            request = parse_subscribe(args)
        except SubscriptionInputError as exc:
            raise CommandError(f"{exc} Usage: `subscribe failed circuit=PLANT001/`.") from None
        before = await current(conversation_key(turn.facts.conversation_id))
        after = apply_subscribe(before, request)
        await changed(turn, "command:subscribe", before, after)
        place = where(turn.facts.conversation_type)
        await turn.reply_text(
            f"Done: {place} now gets {describe(after)}. Type `subscriptions` to see or edit it."
        )

    @registry.handles(COMMANDS.unsubscribe)
    async def unsubscribe(turn: ChatTurn, args: str) -> None:
        try:
            request = parse_unsubscribe(args)
        except SubscriptionInputError as exc:
            raise CommandError(
                f"{exc} Usage: `unsubscribe reminders` or `unsubscribe all`."
            ) from None
        before = await current(conversation_key(turn.facts.conversation_id))
        after = apply_unsubscribe(before, request)
        await changed(turn, "command:unsubscribe", before, after)
        place = where(turn.facts.conversation_type)
        if not after.kinds:
            await turn.reply_text(
                f"Done: nothing is posted to {place} any more. Type `subscribe` to choose again."
            )
        else:
            await turn.reply_text(f"Done: {place} now gets {describe(after)}.")

    @registry.handles(COMMANDS.subscriptions)
    async def subscriptions(turn: ChatTurn, args: str) -> None:
        stored = await store().subscription(conversation_key(turn.facts.conversation_id))
        card = render_subscriptions_card(view(turn.facts, turn.actor, stored))
        await turn.reply_card(
            card, summary=f"Notifications for {where(turn.facts.conversation_type)}"
        )

    @actions.handles(CARD_ACTIONS.subscriptions_save)
    async def save(turn: ActionTurn) -> Card:
        here = _where(turn.facts)
        if turn.action.data.get("conversation") != here.conversation_id:
            raise CommandError("This card belongs to another conversation; nothing was changed.")
        stored = await store().subscription(here.conversation_id)
        before = stored.subscription if stored is not None else Subscription()
        inputs = {str(k): v for k, v in turn.action.inputs.items()}
        try:
            after = subscription_from_inputs(inputs)
        except SubscriptionInputError as exc:
            typed = {k: str(v) for k, v in inputs.items() if isinstance(v, str | int | bool)}
            return render_subscriptions_card(
                view(
                    turn.facts,
                    turn.actor,
                    stored,
                    notice=f"Nothing saved: {exc}",
                    notice_is_error=True,
                    typed=typed,
                )
            )
        await changed(turn, "subscriptions:save", before, after)
        # What was just stored, without reading it back.
        saved = StoredSubscription(after, turn.now, turn.actor.label[:256])
        notice = "Saved." if after.kinds else "Saved: nothing will be posted here."
        return render_subscriptions_card(view(turn.facts, turn.actor, saved, notice=notice))


def _record_of(
    context: TurnContext, facts: TurnFacts, here: _Where, now: datetime
) -> ConversationRecord:
    """A conversation reference from this turn, pointing at the channel, not the thread."""
    activity = context.activity
    reference: dict[str, Any] = TurnContext.get_conversation_reference(activity).serialize()
    reference["conversation"] = {
        **(reference.get("conversation") or {}),
        "id": here.conversation_id,
    }
    return ConversationRecord(
        conversation_id=here.conversation_id,
        channel_id=activity.channel_id or "msteams",
        service_url=activity.service_url or "",
        tenant_id=facts.tenant_id,
        conversation_type=here.conversation_type,
        team_id=facts.team_id,
        title=getattr(activity.conversation, "name", None),
        reference=reference,
        installed_by=facts.user_aad_id or facts.user_id,
        installed_at=now,
    )
