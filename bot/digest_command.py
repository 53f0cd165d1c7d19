"""`digest daily at 09:00 Europe/Berlin`, `digest off`, `digest`: this conversation's daily
digest. Changing it needs what changing the subscription needs (an operator in a
channel or group chat; anyone in their own personal chat)."""

from __future__ import annotations

from bot.chat import ChatTurn
from bot.command_catalog import COMMANDS
from bot.commands import CommandError, CommandRegistry
from bot.subscription_commands import conversation_key
from cards.common import card, heading, text
from domain.digest import DigestInputError, parse_digest
from store.digests import DigestStore


def register_digest_command(registry: CommandRegistry[ChatTurn], store: DigestStore | None) -> None:
    @registry.handles(COMMANDS.digest)
    async def digest(turn: ChatTurn, args: str) -> None:
        if store is None:
            raise CommandError("Daily digests are not available on this bot.")
        try:
            request = parse_digest(args)
        except DigestInputError as exc:
            raise CommandError(str(exc)) from None
        conversation = conversation_key(turn.facts.conversation_id)
        if request is None:
            current = await store.get(conversation)
            said = (
                f"Every day at {current.at:%H:%M} ({current.zone}), asked by {current.created_by}."
                if current
                else "None yet. Ask for one with: digest daily at 09:00 Europe/Berlin"
            )
            await turn.reply_card(card([heading("🗞 Daily digest"), text(said)]), summary=said)
            return
        if not request.enabled:
            removed = await store.remove(conversation)
            said = "Daily digest stopped." if removed else "There was no daily digest here."
            await turn.reply_card(card([heading("🗞 Daily digest"), text(said)]), summary=said)
            return
        who = turn.actor.name or turn.actor.label
        saved = await store.set(conversation, request.at, request.zone, who, turn.now)
        said = (
            f"Every day at {saved.at:%H:%M} ({saved.zone}) this conversation gets the day's "
            "trainings per circuit, deployments, rollbacks and open approvals."
        )
        await turn.reply_card(card([heading("🗞 Daily digest set"), text(said)]), summary=said)
