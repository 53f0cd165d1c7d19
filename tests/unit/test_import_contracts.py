"""Imports point one way: the layer rules of docs/architecture.md, read from the sources.

- `domain` imports nothing of mlbot but itself.
- `store` and `cards` import only `domain` (and themselves). Not even `config`: settings
  are read once in app.py and handed over as plain values, so neither layer needs the
  settings model, and a card or a query stays usable without a configured process.
- `monitoring` imports neither `bot`, `cards` nor botbuilder (Bot Framework stays in
  `bot/` and app.py), so the engine runs the same under `mlbot watch`, the scheduler
  and the tests.
- The engine (`monitoring.engine`) does not import the store's implementation, any
  `store` module: it is given a repository that fits its own protocol.

Every import counts: module level, inside functions and under `TYPE_CHECKING`, since a
type-only import still ties one layer to the other. Violations that exist today and are
being removed are listed in `KNOWN_VIOLATIONS`; the test fails on any new one, and on a
listed one that is gone, so that the list only shrinks.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# (importing module, imported module) pairs that break a rule today.
KNOWN_VIOLATIONS: frozenset[tuple[str, str]] = frozenset()


@dataclass(frozen=True, slots=True)
class Rule:
    """Modules under `importer` may import first-party modules only from `allowed`
    (None: any), and never from `forbidden`, first- or third-party."""

    importer: str
    allowed: frozenset[str] | None = None
    forbidden: frozenset[str] = frozenset()

    def broken_by(self, imported: str) -> bool:
        top = imported.split(".")[0]
        if _within(imported, self.forbidden):
            return True
        return self.allowed is not None and top in FIRST_PARTY and top not in self.allowed


def _within(module: str, prefixes: frozenset[str]) -> bool:
    return any(module == prefix or module.startswith(f"{prefix}.") for prefix in prefixes)


def _first_party() -> frozenset[str]:
    packages = {path.parent.name for path in ROOT.glob("*/__init__.py")}
    modules = {path.stem for path in ROOT.glob("*.py")}
    return frozenset(packages | modules)


FIRST_PARTY = _first_party()

RULES = (
    Rule("domain", allowed=frozenset({"domain"})),
    Rule("store", allowed=frozenset({"store", "domain"})),
    Rule("cards", allowed=frozenset({"cards", "domain"})),
    Rule("monitoring", forbidden=frozenset({"bot", "cards", "botbuilder", "botframework"})),
    Rule("monitoring.engine", forbidden=frozenset({"store"})),
)


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _resolve(base: str, name: str) -> str:
    """`from base import name` names a submodule when one exists, else something in base."""
    candidate = f"{base}.{name}"
    as_path = ROOT.joinpath(*candidate.split("."))
    if as_path.with_suffix(".py").is_file() or (as_path / "__init__.py").is_file():
        return candidate
    return base


def imports_in(source: str, module: str, *, is_package: bool = False) -> Iterator[str]:
    """Every module the source of `module` imports, relative imports made absolute."""
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                anchor = parts[: len(parts) - (node.level - 1)]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            for alias in node.names:
                yield _resolve(base, alias.name)


def imports_of(path: Path) -> Iterator[str]:
    return imports_in(
        path.read_text(encoding="utf-8"), _module_name(path), is_package=path.name == "__init__.py"
    )


def violations() -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for rule in RULES:
        top = ROOT.joinpath(*rule.importer.split("."))
        paths = sorted(top.rglob("*.py")) if top.is_dir() else [top.with_suffix(".py")]
        for path in paths:
            importer = _module_name(path)
            found.update(
                (importer, imported) for imported in imports_of(path) if rule.broken_by(imported)
            )
    return found


def test_rules_cover_existing_layers() -> None:
    for rule in RULES:
        top = ROOT.joinpath(*rule.importer.split("."))
        assert top.is_dir() or top.with_suffix(".py").is_file(), rule.importer


def test_no_new_violations() -> None:
    new = violations() - KNOWN_VIOLATIONS
    assert not new, f"imports that break the layer rules: {sorted(new)}"


def test_known_violations_are_still_there() -> None:
    gone = KNOWN_VIOLATIONS - violations()
    assert not gone, f"fixed, remove from KNOWN_VIOLATIONS: {sorted(gone)}"


def test_a_forbidden_import_is_caught() -> None:
    # The rules themselves, on made-up imports.
    engine = next(rule for rule in RULES if rule.importer == "monitoring.engine")
    monitoring = next(rule for rule in RULES if rule.importer == "monitoring")
    cards = next(rule for rule in RULES if rule.importer == "cards")
    domain = next(rule for rule in RULES if rule.importer == "domain")
    assert engine.broken_by("store.tables")
    assert monitoring.broken_by("botbuilder.core") and monitoring.broken_by("bot.access")
    assert not monitoring.broken_by("monitoring.backoff")
    assert cards.broken_by("config.settings") and not cards.broken_by("domain.jobs")
    assert not cards.broken_by("pydantic")
    assert domain.broken_by("monitoring.engine") and not domain.broken_by("datetime")


def test_nested_type_only_and_relative_imports_are_read() -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "from . import tables\n"
        "from .database import Database\n"
        "if TYPE_CHECKING:\n"
        "    from monitoring import engine\n"
        "def later() -> None:\n"
        "    import botbuilder.core\n"
    )
    found = set(imports_in(source, "store.sample"))
    assert found == {
        "typing",
        "store.tables",
        "store.database",
        "monitoring.engine",
        "botbuilder.core",
    }
