"""The Azure DevOps variable group `mlops-pipeline-settings` as a source of settings.

Precedence is environment (and `.env`) > variable group > defaults. The merge is a pure
function: it takes the settings read at start-up, the names that were set explicitly,
and the group's variables, and returns new settings plus the problems it found. A bad
value in the group is reported and the previous value kept, so an operator's typo in
the group never stops the bot.

`VariableGroupRefresher` re-reads the group periodically (clock and sleep injected),
keeps the last good effective settings, and tells listeners when they change.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import SecretStr, ValidationError

from config.live import VARIABLE_GROUP_KEYS
from config.settings import Settings

log = logging.getLogger(__name__)

# Variable-group key -> Settings field; the live settings are declared in config.live.
GROUP_KEYS: Mapping[str, str] = VARIABLE_GROUP_KEYS

SettingsListener = Callable[[Settings, Settings], Awaitable[None] | None]


@dataclass(frozen=True, slots=True)
class VariableGroupProblem:
    """A group variable that could not be used; `message` is safe to show (no secrets)."""

    key: str
    setting: str
    message: str

    def __str__(self) -> str:
        return f"variable group {self.key} ({self.setting}): {self.message}"


@dataclass(frozen=True, slots=True)
class MergedSettings:
    settings: Settings
    problems: tuple[VariableGroupProblem, ...] = ()
    # Group keys whose value was used (not shadowed by the environment, not invalid).
    applied: tuple[str, ...] = ()


def _alias(field_name: str) -> str:
    field = Settings.model_fields[field_name]
    return field.alias or field_name


def explicit_fields(settings: Settings) -> frozenset[str]:
    """Fields set from the environment or `.env` (what pydantic saw as provided)."""
    return frozenset(settings.model_fields_set)


def _is_explicit(field_name: str, explicit: Collection[str]) -> bool:
    return field_name in explicit or _alias(field_name) in explicit


def _shown(value: Any) -> str:
    if isinstance(value, SecretStr):
        return "(secret)"
    if isinstance(value, tuple):
        return ",".join(value) or "(none)"
    return str(value)


def _validate_one(field_name: str, raw: str) -> tuple[Any, str | None]:
    """Validate one value exactly as start-up would (same aliases, validators, bounds)."""
    try:
        validated = Settings.model_validate({_alias(field_name): raw})
    except ValidationError as exc:
        errors = exc.errors()
        return None, str(errors[0]["msg"]) if errors else "invalid value"
    return getattr(validated, field_name), None


def merge_variable_group(
    settings: Settings,
    explicit: Collection[str],
    group: Mapping[str, str],
    *,
    previous: Settings | None = None,
) -> MergedSettings:
    """Apply the group's variables over `settings` where the environment did not decide.

    `settings` holds environment values and defaults (as read at start-up); `explicit`
    names the fields (or their `MLBOT_*` aliases) that came from the environment/.env.
    Keys are matched without case, as Azure DevOps does. A key missing from the group
    leaves the default. A bad value is reported and the
    value from `previous` (the last effective settings, if any) is kept.
    """
    keep = previous or settings
    updates: dict[str, Any] = {}
    problems: list[VariableGroupProblem] = []
    applied: list[str] = []
    # Azure DevOps treats variable names without case (`ManualCircuits` is `manualCircuits`).
    by_name = {name.lower(): raw for name, raw in group.items()}
    for key, field_name in GROUP_KEYS.items():
        raw = by_name.get(key.lower())
        if raw is None or _is_explicit(field_name, explicit):
            continue
        value, error = _validate_one(field_name, raw)
        if error is not None:
            secret = isinstance(getattr(settings, field_name), SecretStr)
            shown = "" if secret else f" {raw!r}"
            kept = _shown(getattr(keep, field_name))
            problems.append(
                VariableGroupProblem(
                    key, _alias(field_name), f"invalid value{shown}: {error}; keeping {kept}"
                )
            )
            if previous is not None:
                updates[field_name] = getattr(previous, field_name)
            continue
        updates[field_name] = value
        applied.append(key)
    return MergedSettings(settings.model_copy(update=updates), tuple(problems), tuple(applied))


def _same(a: Settings, b: Settings) -> bool:
    return a.model_dump() == b.model_dump()


class VariableGroupRefresher:
    """Keeps effective settings = environment > variable group > defaults, refreshed."""

    def __init__(
        self,
        base: Settings,
        fetch: Callable[[], Awaitable[Mapping[str, str]]],
        *,
        interval_s: float | None = None,
        explicit: Collection[str] | None = None,
        clock: Callable[[], datetime] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._base = base
        self._fetch = fetch
        self._interval_s = float(interval_s or base.variable_group_refresh_seconds)
        self._explicit = frozenset(explicit) if explicit is not None else explicit_fields(base)
        self._clock = clock or (lambda: datetime.now(UTC))
        self._sleep = sleep
        self._current = base
        self._problems: tuple[VariableGroupProblem, ...] = ()
        self._applied: frozenset[str] = frozenset()
        self._last_refreshed: datetime | None = None
        self._last_error: Exception | None = None
        self._listeners: list[SettingsListener] = []

    @property
    def current(self) -> Settings:
        return self._current

    @property
    def problems(self) -> tuple[VariableGroupProblem, ...]:
        return self._problems

    @property
    def applied_fields(self) -> frozenset[str]:
        """Settings fields whose effective value comes from the variable group."""
        return self._applied

    @property
    def last_refreshed(self) -> datetime | None:
        """When the group was last read successfully (None: never)."""
        return self._last_refreshed

    @property
    def last_error(self) -> Exception | None:
        """Why the last read failed; None after a successful read."""
        return self._last_error

    @property
    def interval_s(self) -> float:
        return self._interval_s

    def add_listener(self, listener: SettingsListener) -> Callable[[], None]:
        """Call `listener(old, new)` whenever effective settings change; returns an unsubscribe."""
        self._listeners.append(listener)

        def remove() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return remove

    async def refresh_once(self) -> bool:
        """Read the group and apply it; True when the effective settings changed.

        A failed read keeps the last good settings (the error is in `last_error`).
        """
        try:
            group = await self._fetch()
        except Exception as exc:  # adapters raise AzureCallError; anything else is kept too
            self._last_error = exc
            log.warning("variable group refresh failed: %s", exc)
            return False
        merged = merge_variable_group(self._base, self._explicit, group, previous=self._current)
        self._last_error = None
        self._last_refreshed = self._clock()
        if merged.problems != self._problems:
            for problem in merged.problems:
                log.warning("%s", problem)
        self._problems = merged.problems
        self._applied = frozenset(GROUP_KEYS[key] for key in merged.applied if key in GROUP_KEYS)
        if _same(merged.settings, self._current):
            return False
        old, self._current = self._current, merged.settings
        await self._notify(old, merged.settings)
        return True

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Refresh now and then every `interval_s` until `stop` is set (or cancelled)."""
        while stop is None or not stop.is_set():
            await self.refresh_once()
            if stop is not None and stop.is_set():
                break
            await self._sleep(self._interval_s)

    async def _notify(self, old: Settings, new: Settings) -> None:
        for listener in list(self._listeners):
            try:
                outcome = listener(old, new)
                if inspect.isawaitable(outcome):
                    await outcome
            except Exception:  # one broken listener must not stop the others
                log.exception("settings listener failed")
