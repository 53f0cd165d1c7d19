"""`history <circuit> [N]`: a circuit's last attempts, charted and tabled."""

from __future__ import annotations

from bot.chat import ChatTurn
from bot.command_catalog import COMMANDS
from bot.commands import CommandError, CommandRegistry
from cards.history import render_history_card
from domain.history import HistoryRequestError, build_history, parse_history_request
from store.history import CircuitHistoryStore


def register_history_command(
    registry: CommandRegistry[ChatTurn], history: CircuitHistoryStore | None
) -> None:
    @registry.handles(COMMANDS.history)
    async def history_(turn: ChatTurn, args: str) -> None:
        if history is None:
            raise CommandError("The training history is not available on this bot.")
        try:
            request = parse_history_request(args)
        except HistoryRequestError as exc:
            raise CommandError(str(exc)) from None
        jobs = await history.attempts(request.circuit, request.limit)
        oldest = jobs[-1].created_at or jobs[-1].started_at if jobs else None
        retries = await history.retry_requests(request.circuit, oldest) if jobs else []
        built = build_history(request.circuit, jobs, retries, turn.now)
        await turn.reply_card(
            render_history_card(built), summary=f"Training history of {built.circuit}"
        )
