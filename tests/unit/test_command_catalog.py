"""The command and card action catalog: complete, bound to handlers, readable without a bot."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime

import pytest

from bot.access import KNOWN_ACTIONS, AccessPolicy
from bot.card_actions import ActionRegistry
from bot.card_signing import CardSigner
from bot.chat_commands import ChatServices, Handlers, build_handlers
from bot.command_catalog import CARD_ACTIONS, COMMANDS, EVERYWHERE, Scope, scope_of
from bot.commands import CommandRegistry
from bot.operations import Operations
from monitoring.status_report import StatusService
from store.audit import AuditTrail
from store.database import Database
from store.watched_jobs import WatchedJobStore

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


async def no_circuits() -> set[str]:
    return set()


def services(database: Database) -> ChatServices:
    return ChatServices(
        status=StatusService(WatchedJobStore(database)),
        bot_name="mlbot",
        operations=Operations(None, lambda: "training", lambda: "rollback", no_circuits),
        signer=CardSigner(b"k" * 32, lambda: NOW),
        policy=lambda: AccessPolicy(frozenset(), frozenset()),
        audit=AuditTrail(database),
        settings_rows=list,
    )


async def test_every_catalog_entry_has_a_handler_and_every_handler_an_entry(
    database: Database,
) -> None:
    handlers = build_handlers(services(database))
    assert [s.name for s in handlers.commands.specs()] == [s.name for s in COMMANDS.specs()]
    for spec in COMMANDS.specs():
        for name in (spec.name, *spec.aliases):
            bound = handlers.commands.find(name)
            assert bound is not None and bound.spec is spec
    assert handlers.actions.verbs == {spec.verb for spec in CARD_ACTIONS.specs()}


def test_handlers_refuse_a_catalog_entry_left_without_a_handler() -> None:
    async def allow(*_: object) -> None: ...

    commands: CommandRegistry[object] = CommandRegistry(allow)
    with pytest.raises(LookupError, match="no handler for status"):
        Handlers(commands, ActionRegistry())  # type: ignore[arg-type]


def test_every_permission_is_an_action_access_control_knows() -> None:
    declared = [s.permission for s in COMMANDS.specs()] + [
        s.permission for s in CARD_ACTIONS.specs()
    ]
    assert {p.action for p in declared} <= KNOWN_ACTIONS
    # Rolling back and deciding approvals depend on the environment; nothing else does.
    scoped = {p.action for p in declared if p.environment_scoped}
    assert scoped == {"rollback", "approve", "reject"}


def test_names_and_aliases_are_unique_and_the_menu_fits_teams() -> None:
    words = [w for s in COMMANDS.specs() for w in (s.name, *s.aliases)]
    assert len(words) == len(set(words))
    assert all(w == w.lower() for w in words)
    verbs = [s.verb for s in CARD_ACTIONS.specs()]
    assert len(verbs) == len(set(verbs))
    for scope in EVERYWHERE:
        menu = [s for s in COMMANDS.specs() if s.in_menu and scope in s.scopes]
        assert 0 < len(menu) <= 10, scope


def test_conversations_map_to_manifest_scopes() -> None:
    assert scope_of("channel") is Scope.TEAM
    assert scope_of("groupChat") is Scope.GROUP_CHAT
    assert scope_of("personal") is Scope.PERSONAL
    assert scope_of(None) is None and scope_of("meeting") is None
    # Every command is offered everywhere but `notify` (a person's own chat only); where
    # Teams said nothing, everything is.
    channel = [s.name for s in COMMANDS.specs() if not s.offered_in("channel")]
    assert channel == ["notify"]
    assert COMMANDS.notify.offered_in("personal")
    assert all(s.offered_in(None) for s in COMMANDS.specs())


@pytest.mark.slow  # a fresh interpreter
def test_the_catalog_is_read_without_the_bot_framework_or_a_database() -> None:
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, bot.command_catalog, manifest.package; "
            "print(sorted({m.split('.')[0] for m in sys.modules} "
            "& {'botbuilder', 'sqlalchemy', 'aiohttp', 'azure'}))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert loaded.stdout.strip() == "[]"
