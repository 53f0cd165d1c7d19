"""The chat commands mlbot answers, registered beside their handlers."""

from __future__ import annotations

from dataclasses import dataclass

from bot.chat import ChatTurn
from bot.commands import CommandRegistry
from cards.help import CommandHelp, render_help_card
from cards.status import render_status_card
from monitoring.status_report import StatusService


@dataclass(frozen=True, slots=True)
class ChatServices:
    status: StatusService
    bot_name: str


def build_commands(services: ChatServices) -> CommandRegistry[ChatTurn]:
    registry: CommandRegistry[ChatTurn] = CommandRegistry()

    @registry.command(
        "status",
        usage="status [filter]",
        summary="Every watched training job: circuit, state, elapsed time, attempt. "
        "Add a circuit, experiment or job name to narrow it down.",
        aliases=("st",),
    )
    async def status(turn: ChatTurn, args: str) -> None:
        report = await services.status.report(turn.now, args)
        summary = f"Training status: {report.total} job(s)"
        await turn.reply_card(render_status_card(report), summary=summary)

    @registry.command(
        "help", usage="help", summary="What I can do for you.", aliases=("?", "commands")
    )
    async def help_(turn: ChatTurn, args: str) -> None:
        commands = [CommandHelp(spec.usage, spec.summary) for spec in registry.specs()]
        await turn.reply_card(
            render_help_card(commands, services.bot_name), summary=f"{services.bot_name} help"
        )

    return registry
