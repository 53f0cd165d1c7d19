"""mlbot's Teams activity handler: messages become commands; installs are remembered."""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from botbuilder.core import CardFactory, MessageFactory, TurnContext
from botbuilder.core.teams import TeamsActivityHandler, TeamsInfo
from botbuilder.schema import (
    AdaptiveCardInvokeResponse,
    AdaptiveCardInvokeValue,
    ChannelAccount,
)
from botbuilder.schema.teams import TeamInfo

from bot.access import Actor
from bot.card_actions import CardActionProcessor, update_for_everyone
from bot.chat import ChatTurn, actor_of
from bot.commands import CommandError, CommandRegistry, parse_command
from bot.echoed_text import echoed
from bot.mentions import command_text
from bot.turns import TurnFacts, facts_of
from cards.actions import submitted_action
from cards.help import unknown_command_text
from cards.welcome import render_welcome_card
from store.audit import AuditEntry, AuditTrail
from store.conversations import ConversationRecord, ConversationStore

log = logging.getLogger(__name__)


class MlbotActivityHandler(TeamsActivityHandler):
    def __init__(
        self,
        *,
        commands: CommandRegistry[ChatTurn],
        actions: CardActionProcessor,
        conversations: ConversationStore,
        audit: AuditTrail,
        clock: Callable[[], datetime],
        bot_name: str,
        needs_upn: Callable[[], bool] = lambda: False,
    ) -> None:
        super().__init__()
        self._needs_upn = needs_upn
        self._commands = commands
        self._actions = actions
        self._conversations = conversations
        self._audit = audit
        self._clock = clock
        self._bot_name = bot_name

    # --- messages --------------------------------------------------------------------
    async def on_message_activity(self, turn_context: TurnContext) -> None:
        activity = turn_context.activity
        submitted = submitted_action(activity.value)
        if submitted is not None:
            await self._submitted(turn_context, *submitted)
            return
        entities = [
            {"type": e.type, **(getattr(e, "additional_properties", None) or {})}
            for e in (activity.entities or [])
        ]
        facts = facts_of(activity)
        text = command_text(activity.text, entities, facts.bot_id)
        parsed = parse_command(text)
        turn = ChatTurn(turn_context, facts, self._clock(), await self._actor(turn_context, facts))
        spec = self._commands.find(parsed.name) if parsed.name else None
        if spec is None:
            suggestion = self._commands.suggest(parsed.name) if parsed.name else None
            await turn.reply_text(
                unknown_command_text(
                    echoed(parsed.name), suggestion, facts.bot_name or self._bot_name
                )
            )
            return
        try:
            await spec.handler(turn, parsed.args)
        except CommandError as exc:
            await turn.reply_text(str(exc))
        except Exception:
            ref = uuid.uuid4().hex[:8]
            log.exception("command %s failed (ref %s)", spec.name, ref)
            await turn.reply_text(f"Something went wrong (ref {ref}). The team has the details.")

    async def _actor(self, turn_context: TurnContext, facts: TurnFacts) -> Actor:
        """Who is acting. Teams sends no UPN, so it is looked up only when roles use UPNs."""
        actor = actor_of(facts)
        if not facts.user_id or not self._needs_upn():
            return actor
        try:
            member = await TeamsInfo.get_member(turn_context, facts.user_id)
        except Exception:
            log.info("could not look up the user's UPN; matching on the object id only")
            return actor
        # The UPN only: `email` is a mail attribute that users or admins can change to
        # anything, so it would let someone take an approver's name.
        upn = getattr(member, "user_principal_name", None)
        return dataclasses.replace(actor, upn=upn) if upn else actor

    # --- card buttons (Universal Actions) ----------------------------------------------
    async def _submitted(self, turn_context: TurnContext, verb: str, data: dict[str, Any]) -> None:
        """A fallback `Action.Submit` from a client without Universal Actions: the same
        checks and action as the invoke; the answer replaces the card, or is a reply."""
        facts = facts_of(turn_context.activity)
        outcome = await self._actions.process(
            turn_context, facts, await self._actor(turn_context, facts), self._clock(), verb, data
        )
        if outcome.outcome in ("ok", "failed") and turn_context.activity.reply_to_id:
            await update_for_everyone(turn_context, outcome.card)
            return
        await turn_context.send_activity(
            MessageFactory.attachment(CardFactory.adaptive_card(outcome.card))
        )

    async def on_adaptive_card_invoke(
        self, turn_context: TurnContext, invoke_value: AdaptiveCardInvokeValue
    ) -> AdaptiveCardInvokeResponse:
        action = invoke_value.action
        verb = _field(action, "verb")
        data = _field(action, "data")
        facts = facts_of(turn_context.activity)
        outcome = await self._actions.process(
            turn_context,
            facts,
            await self._actor(turn_context, facts),
            self._clock(),
            verb if isinstance(verb, str) else "",
            data if isinstance(data, dict) else {},
        )
        if outcome.outcome in ("ok", "failed"):
            await update_for_everyone(turn_context, outcome.card)
        # Returned as a model: the endpoint serializes it exactly once.
        return AdaptiveCardInvokeResponse(
            status_code=200, type="application/vnd.microsoft.card.adaptive", value=outcome.card
        )

    # --- installation ----------------------------------------------------------------
    async def on_members_added_activity(
        self, members_added: list[ChannelAccount], turn_context: TurnContext
    ) -> None:
        bot_id = turn_context.activity.recipient.id if turn_context.activity.recipient else None
        if any(member.id == bot_id for member in members_added):
            await self._installed(turn_context)

    async def on_members_removed_activity(
        self, members_removed: list[ChannelAccount], turn_context: TurnContext
    ) -> None:
        bot_id = turn_context.activity.recipient.id if turn_context.activity.recipient else None
        if any(member.id == bot_id for member in members_removed):
            await self._removed(turn_context)

    async def on_installation_update_add(self, turn_context: TurnContext) -> None:
        await self._installed(turn_context)

    async def on_installation_update_remove(self, turn_context: TurnContext) -> None:
        await self._removed(turn_context)

    async def on_teams_members_added_dispatch(
        self,
        members_added: list[ChannelAccount],
        team_info: TeamInfo,
        turn_context: TurnContext,
    ) -> None:
        # Only the bot's own arrival matters; looking up every new team member (what the
        # base class does) would cost a connector call per person for nothing.
        await self.on_members_added_activity(members_added, turn_context)

    async def on_teams_team_deleted(self, team_info: TeamInfo, turn_context: TurnContext) -> None:
        await self._removed(turn_context)

    async def _installed(self, turn_context: TurnContext) -> None:
        activity = turn_context.activity
        facts = facts_of(activity)
        reference = TurnContext.get_conversation_reference(activity)
        serialized: dict[str, Any] = reference.serialize()
        title = getattr(activity.conversation, "name", None)
        is_new = await self._conversations.remember(
            ConversationRecord(
                conversation_id=facts.conversation_id,
                channel_id=activity.channel_id or "msteams",
                service_url=activity.service_url or "",
                tenant_id=facts.tenant_id,
                conversation_type=facts.conversation_type,
                team_id=facts.team_id,
                title=title,
                reference=serialized,
                installed_by=facts.user_aad_id or facts.user_id,
                installed_at=self._clock(),
            )
        )
        await self._audit.record(
            AuditEntry(
                at=self._clock(),
                action="install",
                outcome="ok",
                actor_id=facts.user_aad_id or facts.user_id,
                actor_name=facts.user_name,
                tenant_id=facts.tenant_id,
                conversation_id=facts.conversation_id,
                detail="new" if is_new else "refreshed",
            )
        )
        if is_new:
            name = facts.bot_name or self._bot_name  # as this team or chat calls the bot
            card = render_welcome_card(name, facts.conversation_type or "")
            message = MessageFactory.attachment(CardFactory.adaptive_card(card))
            message.summary = f"{name} is here"
            await turn_context.send_activity(message)

    async def _removed(self, turn_context: TurnContext) -> None:
        facts = facts_of(turn_context.activity)
        if facts.team_id and facts.conversation_type == "channel":
            removed = await self._conversations.forget_team(facts.team_id)
        else:
            removed = int(await self._conversations.forget(facts.conversation_id))
        await self._audit.record(
            AuditEntry(
                at=self._clock(),
                action="uninstall",
                outcome="ok",
                actor_id=facts.user_aad_id or facts.user_id,
                actor_name=facts.user_name,
                tenant_id=facts.tenant_id,
                conversation_id=facts.conversation_id,
                detail=f"forgot {removed} conversation(s)",
            )
        )


def _field(value: Any, name: str) -> Any:
    """Invoke values arrive as dicts or msrest models depending on the sender."""
    if isinstance(value, dict):
        return value.get(name)
    return getattr(value, name, None)
