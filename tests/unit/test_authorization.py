"""The access middleware: every command and button decided from its declared permission."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from bot.access import AccessPolicy, Actor
from bot.authorization import Authorization
from bot.command_catalog import CARD_ACTIONS, COMMANDS, CommandSpec, Permission, Scope
from bot.commands import CommandError
from bot.operations import parse_rollback
from bot.turns import TurnFacts
from store.audit import AuditTrail
from store.database import Database

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
TENANT = "tenant-1"
VIEWER = Actor("viewer-oid", None, "Vera Viewer", TENANT)
OPERATOR = Actor("operator-oid", None, "Otto Operator", TENANT)
APPROVER = Actor("approver-oid", None, "Anna Approver", TENANT)


@dataclass(frozen=True)
class Who:
    facts: TurnFacts
    actor: Actor
    now: datetime = NOW


def in_(conversation_type: str | None, actor: Actor) -> Who:
    facts = TurnFacts(
        conversation_id=f"conv-{conversation_type}",
        conversation_type=conversation_type,
        tenant_id=TENANT,
        team_id=None,
        user_id=f"29:{actor.aad_object_id}",
        user_aad_id=actor.aad_object_id,
        user_name=actor.name,
        bot_id="28:bot",
    )
    return Who(facts, actor)


def environment(args: str) -> str:
    return parse_rollback(args)[0]


@pytest.fixture
def audit(database: Database) -> AuditTrail:
    return AuditTrail(database)


@pytest.fixture
def authorization(audit: AuditTrail) -> Authorization:
    policy = AccessPolicy(
        operators=frozenset({"operator-oid"}),
        approvers=frozenset({"approver-oid"}),
        allowed_tenants=frozenset({TENANT}),
    )
    return Authorization(lambda: policy, audit)


async def test_a_refused_command_says_who_may_and_is_audited(
    authorization: Authorization, audit: AuditTrail
) -> None:
    with pytest.raises(CommandError, match="needs an operator"):
        await authorization.command(COMMANDS.retry, in_("channel", VIEWER), "PLANT001/C1", None)
    [entry] = await audit.recent()
    assert (entry.action, entry.outcome, entry.actor_id) == (
        "command:retry",
        "refused",
        "viewer-oid",
    )
    assert entry.conversation_id == "conv-channel" and "operator" in (entry.detail or "")


async def test_an_allowed_command_passes_without_an_audit_line(
    authorization: Authorization, audit: AuditTrail
) -> None:
    await authorization.command(COMMANDS.retry, in_("channel", OPERATOR), "PLANT001/C1", None)
    await authorization.command(COMMANDS.status, in_("channel", VIEWER), "", None)
    assert await audit.recent() == []


async def test_rollback_is_decided_for_the_environment_its_arguments_name(
    authorization: Authorization, audit: AuditTrail
) -> None:
    spec = COMMANDS.rollback
    await authorization.command(spec, in_("channel", OPERATOR), "staging flaky", environment)
    with pytest.raises(CommandError, match="approver"):
        await authorization.command(spec, in_("channel", OPERATOR), "prod slow", environment)
    await authorization.command(spec, in_("channel", APPROVER), "prod slow", environment)
    [entry] = await audit.recent()
    assert (entry.action, entry.target) == ("command:rollback", "prod")


async def test_permission_comes_before_the_usage_hint(
    authorization: Authorization, audit: AuditTrail
) -> None:
    spec = COMMANDS.rollback
    # Someone who may not roll back anything is told so, not how to type the command.
    with pytest.raises(CommandError, match="Rolling back needs an operator"):
        await authorization.command(spec, in_("channel", VIEWER), "", environment)
    with pytest.raises(CommandError, match="Which environment"):
        await authorization.command(spec, in_("channel", OPERATOR), "", environment)
    assert [e.outcome for e in await audit.recent()] == ["refused"]


async def test_changing_subscriptions_is_free_in_ones_own_personal_chat(
    authorization: Authorization,
) -> None:
    await authorization.command(COMMANDS.subscribe, in_("personal", VIEWER), "all", None)
    with pytest.raises(CommandError, match="needs an operator"):
        await authorization.command(COMMANDS.subscribe, in_("channel", VIEWER), "all", None)


async def test_a_command_is_refused_where_it_is_not_offered(
    authorization: Authorization, audit: AuditTrail
) -> None:
    private = CommandSpec("mine", "mine", "m", Permission("status"), scopes=(Scope.PERSONAL,))
    with pytest.raises(CommandError, match="works in personal chats only"):
        await authorization.command(private, in_("channel", OPERATOR), "", None)
    await authorization.command(private, in_("personal", VIEWER), "", None)
    await authorization.command(private, in_(None, VIEWER), "", None)  # Teams did not say
    assert [e.action for e in await audit.recent()] == ["command:mine"]
    assert not authorization.may_run(private, in_("channel", OPERATOR))


async def test_a_pressed_button_is_decided_for_its_signed_environment(
    authorization: Authorization, audit: AuditTrail
) -> None:
    spec = CARD_ACTIONS.approval_approve
    data = {"approval_id": "a-1", "environment": "prod"}
    who = in_("channel", OPERATOR)
    refused = await authorization.card_action(
        spec, facts=who.facts, actor=who.actor, now=NOW, data=data
    )
    assert not refused.allowed and "approver" in refused.reason
    who = in_("channel", APPROVER)
    allowed = await authorization.card_action(
        spec, facts=who.facts, actor=who.actor, now=NOW, data=data
    )
    assert allowed.allowed
    [entry] = await audit.recent()
    assert (entry.action, entry.outcome, entry.actor_id) == (
        "card:approval.approve",
        "refused",
        "operator-oid",
    )
    assert entry.target == "approval_id=a-1, environment=prod"


def test_help_lists_only_what_the_person_may_run_here(authorization: Authorization) -> None:
    def listed(who: Who) -> list[str]:
        return [s.name for s in COMMANDS.specs() if authorization.may_run(s, who)]

    everyone = ["status", "history", "approvals", "subscriptions", "silences", "help"]
    assert listed(in_("channel", VIEWER)) == everyone
    assert listed(in_("personal", VIEWER)) == [
        "status",
        "history",
        "approvals",
        "subscribe",
        "unsubscribe",
        "subscriptions",
        "digest",
        "notify",
        "silences",
        "help",
    ]
    assert listed(in_("channel", OPERATOR)) == [
        s.name for s in COMMANDS.specs() if s.offered_in("channel")
    ]
    stranger = Actor("stranger-oid", None, "Sam", "another-tenant")
    assert listed(in_("channel", stranger)) == []
