"""Universal Actions (`Action.Execute`): verify, authorize, act once, answer with a card.

Every button press arrives as an `adaptiveCard/action` invoke. Its data must carry a
valid signature (nobody can turn `dev` into `prod`), must not be expired, and its nonce
may act only once: a double click or a Teams retry gets the first answer again. A
handler may be registered with an environment lookup: the environment that decides who
may press it is then read from Azure when it is pressed (an approval's environment is
Azure DevOps' to say, never what the card was told). The answer card replaces the card
for the person who clicked, and the original message is updated for everyone else. Teams
waits about 15 s for the answer: an action still running after `answer_within_s` (a slow
Azure DevOps) is answered with a "working on it" card and finishes in the background,
then updates the message for everyone.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from botbuilder.core import CardFactory, MessageFactory, TurnContext

from bot.access import AccessPolicy, Actor
from bot.authorization import Authorization, LookedUpEnvironment, card_target
from bot.card_signing import CardDataError, CardSigner, SignedAction
from bot.command_catalog import CARD_ACTIONS, CardActionSpec
from bot.commands import CommandError, OutcomePending
from bot.turns import TurnFacts
from cards.actions import render_action_done, render_action_refused, render_action_working
from cards.common import Card
from store.audit import AuditTrail
from store.card_actions import UNKNOWN, CardActionStore

log = logging.getLogger(__name__)


@dataclass
class ActionTurn:
    context: TurnContext
    facts: TurnFacts
    actor: Actor
    now: datetime
    action: SignedAction
    # The environment read when the button was pressed (for handlers with a lookup).
    environment: LookedUpEnvironment | None = None


ActionHandler = Callable[[ActionTurn], Awaitable[Card]]
# Reads the environment of a pressed button from its signed data; None when it cannot be
# known. A CommandError says why it could not be read at all (nothing is done then).
EnvironmentLookup = Callable[[dict[str, Any]], Awaitable[str | None]]


@dataclass(frozen=True, slots=True)
class ActionSpec:
    """A catalog entry with its handler; the entry says what pressing it needs."""

    declared: CardActionSpec
    handler: ActionHandler
    environment: EnvironmentLookup | None = None

    @property
    def verb(self) -> str:
        return self.declared.verb


@dataclass
class ActionRegistry:
    """Handlers keyed by verb, each bound to an entry of the card action catalog."""

    catalog: tuple[CardActionSpec, ...] = field(default_factory=CARD_ACTIONS.specs)
    _specs: dict[str, ActionSpec] = field(default_factory=dict)

    def handles(
        self, declared: CardActionSpec, *, environment: EnvironmentLookup | None = None
    ) -> Callable[[ActionHandler], ActionHandler]:
        if declared not in self.catalog:
            raise ValueError(f"card action {declared.verb!r} is not in the catalog")

        def register(handler: ActionHandler) -> ActionHandler:
            if declared.verb in self._specs:
                raise ValueError(f"card action {declared.verb!r} has two handlers")
            self._specs[declared.verb] = ActionSpec(declared, handler, environment)
            return handler

        return register

    def unhandled(self) -> list[str]:
        """Catalog verbs no handler was bound to (pressing them would answer an error)."""
        return [d.verb for d in self.catalog if d.verb not in self._specs]

    def find(self, verb: str) -> ActionSpec | None:
        return self._specs.get(verb)

    @property
    def verbs(self) -> frozenset[str]:
        return frozenset(self._specs)


@dataclass(frozen=True, slots=True)
class ActionOutcome:
    card: Card
    outcome: str  # ok | refused | failed | repeated | unknown | pending


class CardActionProcessor:
    def __init__(
        self,
        *,
        registry: ActionRegistry,
        signer: CardSigner,
        policy: Callable[[], AccessPolicy],
        actions: CardActionStore,
        audit: AuditTrail,
        answer_within_s: float = 8.0,
    ) -> None:
        self._registry = registry
        self._signer = signer
        self._authorization = Authorization(policy, audit)
        self._actions = actions
        self._audit = audit
        self._answer_within_s = answer_within_s
        self._background: set[asyncio.Task[None]] = set()

    async def process(
        self,
        context: TurnContext,
        facts: TurnFacts,
        actor: Actor,
        now: datetime,
        verb: str,
        data: dict[str, Any],
    ) -> ActionOutcome:
        spec = self._registry.find(verb)
        if spec is None:
            return ActionOutcome(
                render_action_refused("This button is not one mlbot knows."), "refused"
            )
        try:
            signed = self._signer.verify(verb, data)
        except CardDataError as exc:
            await self._record(facts, actor, now, verb, "refused", exc.reason)
            return ActionOutcome(render_action_refused(exc.reason), "refused")
        looked_up: LookedUpEnvironment | None = None
        if spec.environment is not None:
            possible = await self._authorization.card_action_possible(
                spec.declared, facts=facts, actor=actor, now=now, data=signed.data
            )
            if not possible.allowed:
                return ActionOutcome(render_action_refused(possible.reason), "refused")
            try:
                looked_up = LookedUpEnvironment(await spec.environment(signed.data))
            except CommandError as exc:
                await self._record(facts, actor, now, verb, "failed", str(exc), signed)
                return ActionOutcome(render_action_refused(str(exc)), "failed")
        decision = await self._authorization.card_action(
            spec.declared, facts=facts, actor=actor, now=now, data=signed.data, looked_up=looked_up
        )
        if not decision.allowed:
            return ActionOutcome(render_action_refused(decision.reason), "refused")
        claim = await self._actions.claim(signed.nonce, verb, actor.aad_object_id, now)
        # The first press sent its request without learning the outcome: this press acts
        # again under the same nonce, and finds what the first one did.
        if (
            not claim.first
            and claim.outcome == UNKNOWN
            and await self._actions.reclaim(signed.nonce, now)
        ):
            claim = replace(claim, first=True)
        if not claim.first:
            stored = (claim.result or {}).get("card")
            if isinstance(stored, dict):
                return ActionOutcome(stored, "repeated")
            return ActionOutcome(
                render_action_refused("This action is already being handled."), "repeated"
            )
        action = asyncio.ensure_future(
            self._act(spec, ActionTurn(context, facts, actor, now, signed, looked_up))
        )
        done, _ = await asyncio.wait({action}, timeout=self._answer_within_s)
        if action in done:
            return action.result()
        # Answer Teams now; the result replaces the card for everyone when it comes.
        finishing = asyncio.ensure_future(self._finish_later(action, context))
        self._background.add(finishing)
        finishing.add_done_callback(self._background.discard)
        return ActionOutcome(render_action_working(actor.name or "you", now), "pending")

    async def _act(self, spec: ActionSpec, turn: ActionTurn) -> ActionOutcome:
        """Run the handler once; its card is stored under the nonce and audited."""
        facts, actor, now, signed = turn.facts, turn.actor, turn.now, turn.action
        try:
            card = await spec.handler(turn)
            outcome = "ok"
        except OutcomePending as exc:
            # The request may have acted: keep the claim, so that the next press finds
            # out what happened instead of acting as if nothing had.
            card = render_action_done(
                "Outcome being checked", [("Status", str(exc))], actor.display_name, now, ok=False
            )
            await self._actions.complete(signed.nonce, UNKNOWN, {"card": card}, now)
            await self._record(facts, actor, now, signed.verb, UNKNOWN, str(exc), signed)
            return ActionOutcome(card, UNKNOWN)
        except CommandError as exc:
            # Nothing was changed (Azure refused or was unreachable): the same button may
            # be pressed again once the cause is fixed.
            await self._actions.release(signed.nonce)
            card = render_action_refused(str(exc))
            await self._record(facts, actor, now, signed.verb, "failed", str(exc), signed)
            return ActionOutcome(card, "failed")
        except Exception:
            ref = uuid.uuid4().hex[:8]
            log.exception("card action %s failed (ref %s)", signed.verb, ref)
            card = render_action_refused(
                f"Something went wrong (ref {ref}). Nothing more was done."
            )
            outcome = "failed"
        await self._actions.complete(signed.nonce, outcome, {"card": card}, now)
        await self._record(facts, actor, now, signed.verb, outcome, None, signed)
        return ActionOutcome(card, outcome)

    async def _finish_later(
        self, action: asyncio.Future[ActionOutcome], context: TurnContext
    ) -> None:
        try:
            outcome = await action
        except Exception:
            log.exception("a card action finishing in the background failed")
            return
        await update_for_everyone(context, outcome.card)

    async def drain(self) -> None:
        """Wait for actions still finishing in the background (shutdown, tests)."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

    async def _record(
        self,
        facts: TurnFacts,
        actor: Actor,
        now: datetime,
        verb: str,
        outcome: str,
        detail: str | None,
        signed: SignedAction | None = None,
    ) -> None:
        target = None
        if signed is not None:
            target = card_target(signed.data)
        await self._audit.record(
            actor.audit_entry(
                at=now,
                action=f"card:{verb}",
                outcome=outcome,
                conversation_id=facts.conversation_id,
                target=target,
                detail=detail,
            )
        )


async def update_for_everyone(context: TurnContext, card: Card) -> None:
    """Replace the clicked card in the conversation, so everyone sees the outcome."""
    message_id = context.activity.reply_to_id
    if not message_id:
        return
    message = MessageFactory.attachment(CardFactory.adaptive_card(card))
    message.id = message_id
    try:
        await context.update_activity(message)
    except Exception:
        # The clicker already has the answer card; others see it on their next refresh.
        log.warning("could not update the card message %s", message_id, exc_info=True)
