"""The one access filter: every chat command and every card button passes here first.

What each command or button needs is declared in `bot.command_catalog`; this reads the
declaration, asks `bot.access.decide`, writes the audit line of a refusal and answers
with a sentence that says which role may do it. Handlers never check access themselves,
and `help` lists exactly what would pass here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from bot.access import AccessPolicy, Actor, Decision, Role, decide, decide_any_environment
from bot.command_catalog import CardActionSpec, CommandSpec, Scope
from bot.commands import CommandError, EnvironmentOf
from bot.turns import TurnFacts
from store.audit import AuditTrail

_DETAIL_MAX = 2000
_TARGET_MAX = 500
_PLACES = {
    Scope.TEAM: "team channels",
    Scope.GROUP_CHAT: "group chats",
    Scope.PERSONAL: "personal chats",
}


class Turn(Protocol):
    """Who acts, where and when: what `ChatTurn` and `ActionTurn` both carry."""

    @property
    def facts(self) -> TurnFacts: ...
    @property
    def actor(self) -> Actor: ...
    @property
    def now(self) -> datetime: ...


def card_target(data: Mapping[str, Any]) -> str:
    """A button's signed data as one audit field (what exactly was pressed)."""
    return ", ".join(f"{k}={v}" for k, v in sorted(data.items()))[:_TARGET_MAX]


@dataclass(frozen=True, slots=True)
class LookedUpEnvironment:
    """A button's environment as Azure DevOps says when it is pressed; None: unknown."""

    name: str | None


def decide_as_production(
    policy: AccessPolicy, actor: Actor, action: str, *, personal: bool = False
) -> Decision:
    """For an approval whose environment cannot be known: the strictest approvers decide,
    an approver of every production environment."""
    unknown = "I could not find out in Azure DevOps which environment this approval is for"
    environments = sorted(policy.production_environments)
    if not environments:
        return Decision(False, Role.APPROVER, f"{unknown}, so mlbot cannot let anyone decide it.")
    decision = Decision(False, Role.APPROVER, unknown)
    for environment in environments:
        decision = decide(policy, actor, action, environment, personal=personal)
        if not decision.allowed:
            return Decision(
                False,
                decision.role_needed,
                f"{unknown}, so it needs an approver of production. {decision.reason}",
            )
    return decision


class Authorization:
    def __init__(self, policy: Callable[[], AccessPolicy], audit: AuditTrail) -> None:
        self._policy = policy
        self._audit = audit

    async def command(
        self, spec: CommandSpec, turn: Turn, args: str, environment_of: EnvironmentOf | None
    ) -> None:
        """Let a command run, or raise CommandError with the refusal (audited)."""
        facts = turn.facts
        personal = facts.conversation_type == "personal"
        environment: str | None = None
        if not spec.offered_in(facts.conversation_type):
            places = " and ".join(_PLACES[scope] for scope in spec.scopes)
            # No role helps here: the command is not offered in this kind of conversation.
            decision = Decision(False, Role.VIEWER, f"`{spec.name}` works in {places} only.")
        elif spec.permission.environment_scoped and environment_of is not None:
            # Permission first: arguments are read (and echoed in a usage hint) only for
            # someone who may run the command for some environment.
            decision = decide_any_environment(
                self._policy(), turn.actor, spec.permission.action, personal=personal
            )
            if decision.allowed:
                environment = environment_of(args)
                decision = decide(
                    self._policy(),
                    turn.actor,
                    spec.permission.action,
                    environment,
                    personal=personal,
                )
        else:
            decision = decide(self._policy(), turn.actor, spec.permission.action, personal=personal)
        if not decision.allowed:
            await self._refused(
                turn.actor, facts, turn.now, f"command:{spec.name}", environment, decision
            )
            raise CommandError(decision.reason)

    async def card_action(
        self,
        spec: CardActionSpec,
        *,
        facts: TurnFacts,
        actor: Actor,
        now: datetime,
        data: Mapping[str, Any],
        looked_up: LookedUpEnvironment | None = None,
    ) -> Decision:
        """The decision on a pressed button whose signature was verified; refusals audited.

        `looked_up` replaces the signed environment for buttons whose environment is
        read from Azure when pressed (approvals): unknown means production's approvers.
        """
        personal = facts.conversation_type == "personal"
        if looked_up is not None and looked_up.name is None:
            decision = decide_as_production(
                self._policy(), actor, spec.permission.action, personal=personal
            )
        else:
            signed = str(data.get(spec.environment_field) or "") or None
            environment = looked_up.name if looked_up is not None else signed
            decision = decide(
                self._policy(),
                actor,
                spec.permission.action,
                environment if spec.permission.environment_scoped else None,
                personal=personal,
            )
        if not decision.allowed:
            await self._refused(actor, facts, now, f"card:{spec.verb}", card_target(data), decision)
        return decision

    async def card_action_possible(
        self,
        spec: CardActionSpec,
        *,
        facts: TurnFacts,
        actor: Actor,
        now: datetime,
        data: Mapping[str, Any],
    ) -> Decision:
        """Before an environment is looked up in Azure: may `actor` press this button for
        any environment at all? Refusals (local mode, tenant, no role) are audited and need
        no call to Azure."""
        decision = decide_any_environment(
            self._policy(),
            actor,
            spec.permission.action,
            personal=facts.conversation_type == "personal",
        )
        if not decision.allowed:
            await self._refused(actor, facts, now, f"card:{spec.verb}", card_target(data), decision)
        return decision

    def may_run(self, spec: CommandSpec, turn: Turn) -> bool:
        """Whether `help` lists the command for this person here (no audit line)."""
        if not spec.offered_in(turn.facts.conversation_type):
            return False
        personal = turn.facts.conversation_type == "personal"
        return decide_any_environment(
            self._policy(), turn.actor, spec.permission.action, personal=personal
        ).allowed

    async def _refused(
        self,
        actor: Actor,
        facts: TurnFacts,
        now: datetime,
        action: str,
        target: str | None,
        decision: Decision,
    ) -> None:
        await self._audit.record(
            actor.audit_entry(
                at=now,
                action=action,
                outcome="refused",
                conversation_id=facts.conversation_id,
                target=target,
                detail=decision.reason[:_DETAIL_MAX],
            )
        )
