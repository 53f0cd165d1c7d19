from __future__ import annotations

import pytest

from bot.command_catalog import CommandSpec, Permission
from bot.commands import CommandError, CommandRegistry, EnvironmentOf

STATUS = CommandSpec("status", "status", "s", Permission("status"), aliases=("st",))
HELP = CommandSpec("help", "help", "h", Permission("help"))
ROLLBACK = CommandSpec("rollback", "rollback <env>", "r", Permission("rollback", True))
CATALOG = (STATUS, ROLLBACK, HELP)


class Gate:
    """A guard that refuses the commands it is told to and remembers what it saw."""

    def __init__(self, refuse: frozenset[str] = frozenset()) -> None:
        self.refuse = refuse
        self.seen: list[tuple[str, str, str | None]] = []

    async def __call__(
        self, spec: CommandSpec, turn: list[str], args: str, environment_of: EnvironmentOf | None
    ) -> None:
        environment = environment_of(args) if environment_of else None
        self.seen.append((spec.name, args, environment))
        if spec.name in self.refuse:
            raise CommandError(f"no {spec.name}")


def test_registry_finds_by_name_and_alias_and_suggests() -> None:
    registry: CommandRegistry[list[str]] = CommandRegistry(Gate(), CATALOG)

    @registry.handles(HELP)
    async def help_(ctx: list[str], args: str) -> None: ...

    @registry.handles(STATUS)
    async def status(ctx: list[str], args: str) -> None: ...

    assert registry.find("STATUS") is registry.find("st")
    assert registry.find("nope") is None
    assert registry.find("rollback") is None  # in the catalog, but nothing answers it
    assert registry.suggest("stauts") == "status"
    assert registry.suggest("hlep") == "help"
    assert registry.suggest("deploy-everything") is None
    # The catalog's order, not the order of binding.
    assert [s.name for s in registry.specs()] == ["status", "help"]
    assert registry.unhandled() == ["rollback"]


async def test_the_guard_runs_before_the_handler_and_can_stop_it() -> None:
    gate = Gate(refuse=frozenset({"status"}))
    registry: CommandRegistry[list[str]] = CommandRegistry(gate, CATALOG)

    @registry.handles(STATUS)
    async def status(ctx: list[str], args: str) -> None:
        ctx.append(f"status {args}")

    @registry.handles(ROLLBACK, environment=lambda args: args.split()[0])
    async def rollback(ctx: list[str], args: str) -> None:
        ctx.append(f"rollback {args}")

    ran: list[str] = []
    command = registry.find("status")
    assert command is not None
    with pytest.raises(CommandError, match="no status"):
        await command.handler(ran, "x")
    bound = registry.find("rollback")
    assert bound is not None
    await bound.handler(ran, "prod now")
    assert ran == ["rollback prod now"]
    assert gate.seen == [("status", "x", None), ("rollback", "prod now", "prod")]


def test_handlers_bind_only_to_catalog_entries() -> None:
    registry: CommandRegistry[list[str]] = CommandRegistry(Gate(), CATALOG)
    stray = CommandSpec("deploy", "deploy", "d", Permission("retry"))
    with pytest.raises(ValueError, match="not in the command catalog"):
        registry.handles(stray)
    # An environment-scoped permission cannot be checked without reading the environment.
    with pytest.raises(ValueError, match="environment parse step"):
        registry.handles(ROLLBACK)

    @registry.handles(STATUS)
    async def status(ctx: list[str], args: str) -> None: ...

    with pytest.raises(ValueError, match="two handlers"):
        registry.handles(STATUS)(status)
