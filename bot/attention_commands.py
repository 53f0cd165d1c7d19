"""`silence`, `silences`, `unsilence`, and the Acknowledge / Snooze buttons.

Access is decided from the catalog before these run (operators silence, acknowledge and
snooze; everyone may list silences); every action lands in the audit trail there.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from bot.attention_buttons import attention_buttons
from bot.card_actions import ActionRegistry, ActionTurn
from bot.card_signing import CardSigner
from bot.chat import ChatTurn
from bot.command_catalog import CARD_ACTIONS, COMMANDS
from bot.commands import CommandError, CommandRegistry
from cards.attention import (
    render_silence_created,
    render_silence_ended,
    render_silences,
    with_attention,
)
from cards.common import Card, card, text
from cards.events import render_event_card
from domain.attention import SNOOZE_CHOICES, SilenceInputError, parse_silence
from store.attention import AttentionStore, EventLookup


@dataclass(frozen=True, slots=True)
class AttentionServices:
    store: AttentionStore
    lookup: EventLookup
    signer: CardSigner


def _who(turn: ChatTurn | ActionTurn) -> str:
    return turn.actor.name or turn.actor.label


def register_attention(
    registry: CommandRegistry[ChatTurn],
    actions: ActionRegistry,
    services: AttentionServices | None,
) -> None:
    def _services() -> AttentionServices:
        if services is None:
            raise CommandError("Silences and acknowledgements are not available on this bot.")
        return services

    @registry.handles(COMMANDS.silence)
    async def silence(turn: ChatTurn, args: str) -> None:
        store = _services().store
        try:
            request = parse_silence(args)
        except SilenceInputError as exc:
            raise CommandError(str(exc)) from None
        created = await store.add_silence(request, _who(turn), turn.now)
        await turn.reply_card(
            render_silence_created(created, turn.now), summary=f"Silence #{created.id} created"
        )

    @registry.handles(COMMANDS.silences)
    async def silences(turn: ChatTurn, args: str) -> None:
        active = await _services().store.active_silences(turn.now)
        await turn.reply_card(render_silences(active, turn.now), summary="Active silences")

    @registry.handles(COMMANDS.unsilence)
    async def unsilence(turn: ChatTurn, args: str) -> None:
        word = args.strip().lstrip("#")
        if not word.isdigit() or len(word) > 9:
            raise CommandError("Which silence? For example: `unsilence 3` (`silences` lists them).")
        ended = await _services().store.end_silence(int(word), turn.now)
        if ended is None:
            raise CommandError(f"No active silence #{word}; `silences` lists the active ones.")
        await turn.reply_card(render_silence_ended(ended, _who(turn)), summary="Silence ended")

    async def _event_card(turn: ActionTurn) -> Card:
        """The pressed card as everyone should now see it."""
        found = _services()
        data = turn.action.data
        job = str(data.get("job", ""))
        event_id = data.get("event_id")
        event = await found.lookup.event(event_id) if isinstance(event_id, int) else None
        ack, snooze = await found.store.attention(job)
        if event is None:  # removed by retention: say what happened, without the old card
            lines = [text(f"👀 {ack.by} is on it.")] if ack else []
            return card(lines or [text("Done.")])
        buttons = attention_buttons(event, found.signer, ack)
        return with_attention(render_event_card(event), ack, snooze, buttons)

    @actions.handles(CARD_ACTIONS.alert_acknowledge)
    async def acknowledge(turn: ActionTurn) -> Card:
        job = str(turn.action.data.get("job", ""))
        if not job:
            raise CommandError("This button does not say which job it is about.")
        await _services().store.acknowledge(job, _who(turn), turn.now)
        return await _event_card(turn)

    @actions.handles(CARD_ACTIONS.alert_snooze)
    async def snooze(turn: ActionTurn) -> Card:
        data = turn.action.data
        job = str(data.get("job", ""))
        choice = str(data.get("for", ""))
        if not job or choice not in SNOOZE_CHOICES:
            raise CommandError("This button does not say what to snooze or for how long.")
        length: timedelta | None = SNOOZE_CHOICES[choice]
        until = turn.now + length if length is not None else None
        await _services().store.snooze(job, _who(turn), until, turn.now)
        return await _event_card(turn)
