"""Command parsing and the registry that binds chat command handlers to the catalog.

Parsing is pure. What a command is called, what it needs and where it is offered is
declared in `bot.command_catalog`; handlers are bound to those entries beside their code
with `registry.handles(COMMANDS.status)` rather than an if/elif ladder. Every bound
handler is reached only through the registry's guard (the access middleware).
"""

from __future__ import annotations

import difflib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from bot.command_catalog import COMMANDS, CommandSpec

Ctx = TypeVar("Ctx")

Handler = Callable[[Ctx, str], Awaitable[None]]
# The environment a command's arguments name; raises CommandError when they name none.
EnvironmentOf = Callable[[str], str]
# Runs before every handler; raises CommandError (shown to the user) to refuse.
Guard = Callable[[CommandSpec, Ctx, str, EnvironmentOf | None], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class ParsedCommand:
    name: str  # lower-case first word; "" when the user sent nothing
    args: str  # the rest, as typed


def parse_command(text: str) -> ParsedCommand:
    """Split cleaned text into a command name (case-insensitive) and its arguments."""
    stripped = text.strip()
    if not stripped:
        return ParsedCommand("", "")
    head, _, rest = stripped.partition(" ")
    return ParsedCommand(head.lower().lstrip("/"), rest.strip())


class CommandError(Exception):
    """An expected failure whose message is meant for the user."""


class OutcomePending(Exception):
    """The request left but its outcome is not known yet; the message says so to the user.

    Unlike a `CommandError`, something may have changed: the same action, asked again,
    must find out what happened rather than act afresh.
    """


@dataclass(frozen=True, slots=True)
class BoundCommand(Generic[Ctx]):
    """A catalog entry with its handler, reachable only past the guard."""

    spec: CommandSpec
    run: Handler[Ctx]
    guard: Guard[Ctx]
    environment_of: EnvironmentOf | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    async def handler(self, turn: Ctx, args: str) -> None:
        await self.guard(self.spec, turn, args, self.environment_of)
        await self.run(turn, args)


class CommandRegistry(Generic[Ctx]):
    """Handlers keyed by catalog entry; the catalog's order is the order in `help`."""

    def __init__(self, guard: Guard[Ctx], catalog: Sequence[CommandSpec] | None = None) -> None:
        self._guard = guard
        self._catalog = tuple(COMMANDS.specs() if catalog is None else catalog)
        self._bound: dict[str, BoundCommand[Ctx]] = {}
        self._names = {key.lower(): s.name for s in self._catalog for key in (s.name, *s.aliases)}

    def handles(
        self, spec: CommandSpec, *, environment: EnvironmentOf | None = None
    ) -> Callable[[Handler[Ctx]], Handler[Ctx]]:
        """Bind a handler to a catalog entry. An environment-scoped permission needs the
        parse step that reads the environment from the arguments."""
        if spec not in self._catalog:
            raise ValueError(f"command {spec.name!r} is not in the command catalog")
        if spec.permission.environment_scoped and environment is None:
            raise ValueError(f"command {spec.name!r} needs an environment parse step")

        def bind(handler: Handler[Ctx]) -> Handler[Ctx]:
            if spec.name in self._bound:
                raise ValueError(f"command {spec.name!r} has two handlers")
            self._bound[spec.name] = BoundCommand(spec, handler, self._guard, environment)
            return handler

        return bind

    def unhandled(self) -> list[str]:
        """Catalog entries no handler was bound to (the bot would not answer them)."""
        return [s.name for s in self._catalog if s.name not in self._bound]

    def find(self, name: str) -> BoundCommand[Ctx] | None:
        key = self._names.get(name.lower())
        return self._bound.get(key) if key else None

    def specs(self) -> list[CommandSpec]:
        return [s for s in self._catalog if s.name in self._bound]

    def suggest(self, name: str) -> str | None:
        """The closest known command to a mistyped one, if any is close enough."""
        matches = difflib.get_close_matches(name.lower(), list(self._names), n=1, cutoff=0.6)
        return self._names[matches[0]] if matches else None
