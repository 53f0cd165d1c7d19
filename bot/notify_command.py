"""`notify me`, `notify me off`: in someone's personal chat, their own failures."""

from __future__ import annotations

from bot.chat import ChatTurn
from bot.command_catalog import COMMANDS
from bot.commands import CommandError, CommandRegistry
from cards.common import card, heading, text
from store.personal_alerts import PersonalAlert, PersonalAlertStore


def register_notify_command(
    registry: CommandRegistry[ChatTurn], store: PersonalAlertStore | None
) -> None:
    @registry.handles(COMMANDS.notify)
    async def notify(turn: ChatTurn, args: str) -> None:
        if store is None:
            raise CommandError("Personal notifications are not available on this bot.")
        if turn.facts.conversation_type != "personal":
            raise CommandError("Ask for your own notifications in your personal chat with me.")
        words = [w.casefold() for w in args.split()]
        if not words or words[0] != "me" or len(words) > 2 or words[1:] not in ([], ["off"]):
            raise CommandError(
                "Say `notify me` to get your failures here, `notify me off` to stop."
            )
        user = turn.actor.aad_object_id
        if not user:
            raise CommandError("Teams did not say who you are, so I cannot match your jobs.")
        if words[1:] == ["off"]:
            removed = await store.remove(user)
            said = "Stopped." if removed else "You had not asked for personal notifications."
        else:
            await store.add(
                PersonalAlert(user, turn.facts.conversation_id, turn.actor.upn, turn.actor.name),
                turn.now,
            )
            said = (
                "From now on I post here the failures of the Azure ML jobs you submit and of "
                "the circuits you own (MLBOT_CIRCUIT_OWNERS). `notify me off` stops it."
            )
        await turn.reply_card(
            card([heading("🔔 Personal notifications"), text(said)]), summary=said
        )
