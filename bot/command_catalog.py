"""Every chat command and card button mlbot answers, declared as data.

One entry per command (its words, the permission it needs, where Teams offers it) and one
per card verb. `help`, the Teams manifest's command menu and the access middleware all
read these constants, so what is listed, what is offered and what is allowed cannot drift
apart. Handlers are bound to entries by the registries (`registry.handles(COMMANDS.status)`).

This module is pure data: it imports neither the Bot Framework SDK nor any service, so the
manifest builder reads it without wiring a bot.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from enum import StrEnum

from cards.subscriptions import SAVE_VERB, SUBSCRIBE_HELP, SUBSCRIPTIONS_HELP, UNSUBSCRIBE_HELP
from domain.attention import ACKNOWLEDGE_VERB, SNOOZE_VERB

__all__ = [
    "CARD_ACTIONS",
    "COMMANDS",
    "EVERYWHERE",
    "CardActionCatalog",
    "CardActionSpec",
    "CommandCatalog",
    "CommandSpec",
    "Permission",
    "Scope",
    "scope_of",
]


class Scope(StrEnum):
    """Where Teams offers a command (the manifest's `commandLists` scopes)."""

    TEAM = "team"
    GROUP_CHAT = "groupChat"
    PERSONAL = "personal"


# In the order the manifest lists its command lists.
EVERYWHERE: tuple[Scope, ...] = (Scope.TEAM, Scope.GROUP_CHAT, Scope.PERSONAL)

# Teams' conversation types, as activities carry them, and the scope each belongs to.
_SCOPE_OF_CONVERSATION = {
    "channel": Scope.TEAM,
    "groupChat": Scope.GROUP_CHAT,
    "personal": Scope.PERSONAL,
}


def scope_of(conversation_type: str | None) -> Scope | None:
    """The scope of a conversation; None when Teams did not say (nothing is restricted)."""
    return _SCOPE_OF_CONVERSATION.get(conversation_type or "")


@dataclass(frozen=True, slots=True)
class Permission:
    """What running something needs: an action name `bot.access.decide` knows, and whether
    the decision depends on the environment touched (a rollback of prod needs more than a
    rollback of dev)."""

    action: str
    environment_scoped: bool = False


@dataclass(frozen=True, slots=True)
class CommandSpec:
    name: str
    usage: str  # the argument syntax, as `help` shows it
    summary: str
    permission: Permission
    aliases: tuple[str, ...] = ()
    scopes: tuple[Scope, ...] = EVERYWHERE
    # Listed in the Teams compose-box menu, which holds at most 10 commands.
    in_menu: bool = True

    def offered_in(self, conversation_type: str | None) -> bool:
        scope = scope_of(conversation_type)
        return scope is None or scope in self.scopes


@dataclass(frozen=True, slots=True)
class CardActionSpec:
    verb: str
    permission: Permission
    # The signed data field naming the environment, for environment-scoped permissions.
    environment_field: str = "environment"


@dataclass(frozen=True, slots=True)
class CommandCatalog:
    """The commands, in the order `help` and the compose-box menu list them."""

    status: CommandSpec
    history: CommandSpec
    retry: CommandSpec
    watch: CommandSpec
    unwatch: CommandSpec
    rollback: CommandSpec
    approvals: CommandSpec
    config: CommandSpec
    subscribe: CommandSpec
    unsubscribe: CommandSpec
    subscriptions: CommandSpec
    digest: CommandSpec
    notify: CommandSpec
    silence: CommandSpec
    silences: CommandSpec
    unsilence: CommandSpec
    help: CommandSpec

    def specs(self) -> tuple[CommandSpec, ...]:
        return tuple(getattr(self, f.name) for f in fields(self))


@dataclass(frozen=True, slots=True)
class CardActionCatalog:
    retry_confirm: CardActionSpec
    rollback_confirm: CardActionSpec
    rollback_cancel: CardActionSpec
    action_cancel: CardActionSpec
    approval_approve: CardActionSpec
    approval_reject: CardActionSpec
    subscriptions_save: CardActionSpec
    alert_acknowledge: CardActionSpec
    alert_snooze: CardActionSpec

    def specs(self) -> tuple[CardActionSpec, ...]:
        return tuple(getattr(self, f.name) for f in fields(self))


COMMANDS = CommandCatalog(
    status=CommandSpec(
        "status",
        usage="status [filter]",
        summary="Every watched training job: circuit, state, elapsed time, attempt. "
        "Add a circuit, experiment or job name to narrow it down.",
        permission=Permission("status"),
        aliases=("st",),
    ),
    history=CommandSpec(
        "history",
        usage="history <circuit> [count]",
        summary="A circuit's last attempts (10 unless you say, at most 30): outcome, "
        "run time, who retried, as a chart and a table.",
        permission=Permission("history"),
    ),
    retry=CommandSpec(
        "retry",
        usage="retry <circuits>",
        summary="Queue the training pipeline again for these circuits "
        "(e.g. PLANT001/CIRCUIT01,PLANT002/CIRCUIT02), after a confirmation.",
        permission=Permission("retry"),
    ),
    watch=CommandSpec(
        "watch",
        usage="watch <job>",
        summary="Watch an Azure ML job by name and post its changes here.",
        permission=Permission("watch"),
    ),
    unwatch=CommandSpec(
        "unwatch",
        usage="unwatch <job>",
        summary="Stop posting changes of a watched job.",
        permission=Permission("unwatch"),
        # The Teams menu holds 10 commands; `watch` answers say how to stop.
        in_menu=False,
    ),
    rollback=CommandSpec(
        "rollback",
        usage="rollback <environment> [reason]",
        summary="Queue rollback-pipeline for an environment, after a confirmation "
        "(prod needs an approver).",
        permission=Permission("rollback", environment_scoped=True),
    ),
    approvals=CommandSpec(
        "approvals",
        usage="approvals",
        summary="Pending Azure DevOps approvals, with Approve and Reject buttons.",
        permission=Permission("approvals"),
    ),
    config=CommandSpec(
        "config",
        usage="config",
        summary="The effective settings and where each came from (secrets masked).",
        permission=Permission("config"),
    ),
    subscribe=CommandSpec(
        "subscribe",
        usage=SUBSCRIBE_HELP.usage,
        summary=SUBSCRIBE_HELP.summary,
        permission=Permission("subscribe"),
    ),
    # The Teams menu holds 10 commands; switching kinds off is also on the card.
    unsubscribe=CommandSpec(
        "unsubscribe",
        usage=UNSUBSCRIBE_HELP.usage,
        summary=UNSUBSCRIBE_HELP.summary,
        permission=Permission("unsubscribe"),
        in_menu=False,
    ),
    subscriptions=CommandSpec(
        "subscriptions",
        usage=SUBSCRIPTIONS_HELP.usage,
        summary=SUBSCRIPTIONS_HELP.summary,
        permission=Permission("subscriptions"),
    ),
    digest=CommandSpec(
        "digest",
        usage="digest [daily at HH:MM Zone | off]",
        summary="A card every day at that local time: trainings per circuit against their "
        "median, deployments, rollbacks, open approvals.",
        permission=Permission("subscribe"),
        in_menu=False,
    ),
    notify=CommandSpec(
        "notify",
        usage="notify me [off]",
        summary="In your personal chat: the failures of the jobs you submit and of the "
        "circuits you own, here too.",
        permission=Permission("subscribe"),
        scopes=(Scope.PERSONAL,),
        in_menu=False,
    ),
    silence=CommandSpec(
        "silence",
        usage="silence [circuit=P] [experiment=E] [env=N] [kinds=K] for <30m|2h|1d> [reason]",
        summary="Hold back matching events for a while (recorded, not posted; "
        "nothing held is posted late).",
        permission=Permission("silence"),
        in_menu=False,
    ),
    silences=CommandSpec(
        "silences",
        usage="silences",
        summary="The active silences: what each holds, until when, by whom, how many it held.",
        permission=Permission("silences"),
        in_menu=False,
    ),
    unsilence=CommandSpec(
        "unsilence",
        usage="unsilence <id>",
        summary="End a silence now.",
        permission=Permission("unsilence"),
        in_menu=False,
    ),
    help=CommandSpec(
        "help",
        usage="help",
        summary="What I can do for you.",
        permission=Permission("help"),
        aliases=("?", "commands"),
    ),
)

CARD_ACTIONS = CardActionCatalog(
    retry_confirm=CardActionSpec("retry.confirm", Permission("retry")),
    rollback_confirm=CardActionSpec(
        "rollback.confirm", Permission("rollback", environment_scoped=True)
    ),
    # Cancelling an automatic rollback overrides the health watch: an approver's call.
    rollback_cancel=CardActionSpec(
        "rollback.cancel", Permission("approve", environment_scoped=True)
    ),
    # Cancel on a confirmation card changes nothing, so anyone who may look may press it.
    action_cancel=CardActionSpec("action.cancel", Permission("status")),
    approval_approve=CardActionSpec(
        "approval.approve", Permission("approve", environment_scoped=True)
    ),
    approval_reject=CardActionSpec(
        "approval.reject", Permission("reject", environment_scoped=True)
    ),
    subscriptions_save=CardActionSpec(SAVE_VERB, Permission("subscribe")),
    alert_acknowledge=CardActionSpec(ACKNOWLEDGE_VERB, Permission("acknowledge")),
    alert_snooze=CardActionSpec(SNOOZE_VERB, Permission("snooze")),
)
