"""Command parsing and the registry of chat commands.

Parsing is pure; handlers are registered beside what they handle with
`registry.command("status", ...)` rather than an if/elif ladder.
"""

from __future__ import annotations

import difflib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

Ctx = TypeVar("Ctx")


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


@dataclass(frozen=True, slots=True)
class CommandSpec(Generic[Ctx]):
    name: str
    usage: str
    summary: str
    handler: Callable[[Ctx, str], Awaitable[None]]
    aliases: tuple[str, ...] = ()
    # Listed in the Teams compose-box menu, which holds at most 10 commands.
    in_menu: bool = True


@dataclass
class CommandRegistry(Generic[Ctx]):
    """Commands keyed by name; the order of registration is the order in `help`."""

    _specs: dict[str, CommandSpec[Ctx]] = field(default_factory=dict)
    _names: dict[str, str] = field(default_factory=dict)

    def command(
        self,
        name: str,
        *,
        usage: str,
        summary: str,
        aliases: tuple[str, ...] = (),
        in_menu: bool = True,
    ) -> Callable[[Callable[[Ctx, str], Awaitable[None]]], Callable[[Ctx, str], Awaitable[None]]]:
        def register(
            handler: Callable[[Ctx, str], Awaitable[None]],
        ) -> Callable[[Ctx, str], Awaitable[None]]:
            spec = CommandSpec(name, usage, summary, handler, aliases, in_menu)
            self._specs[name] = spec
            for key in (name, *aliases):
                self._names[key] = name
            return handler

        return register

    def find(self, name: str) -> CommandSpec[Ctx] | None:
        key = self._names.get(name.lower())
        return self._specs[key] if key else None

    def specs(self) -> list[CommandSpec[Ctx]]:
        return list(self._specs.values())

    def suggest(self, name: str) -> str | None:
        """The closest known command to a mistyped one, if any is close enough."""
        matches = difflib.get_close_matches(name.lower(), list(self._names), n=1, cutoff=0.6)
        return self._names[matches[0]] if matches else None
