"""Who owns a circuit: prefix rules that name the people to mention when it needs someone.

A rule is `PREFIX=person|person`, e.g. `PLANT001/=ada@contoso.com|5f1c…` (a UPN or an
Entra object id, the identities Teams accepts in a card mention). Every rule whose prefix
starts the circuit's name applies, the most specific first, so a plant's owner and a
circuit's owner are both told. Prefixes compare case-insensitively, like circuit names
typed in chat.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

_PEOPLE_SEPARATORS = re.compile(r"[|\s]+")
_OBJECT_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)
_UPN = re.compile(r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$")
_NAME_PARTS = re.compile(r"[._+-]+")
_MARKUP = re.compile(r"[\\*_\[\]`<>]")
MAX_MENTIONED = 20  # a card that pings more people than this is a broadcast, not an owner


@dataclass(frozen=True)
class Person:
    """Someone a card can @mention: `id` is a UPN or an Entra object id."""

    id: str
    name: str


@dataclass(frozen=True)
class OwnerRule:
    prefix: str
    people: tuple[Person, ...]


def person(identity: str) -> Person:
    """The person an owner entry names; raises ValueError for anything else."""
    value = identity.strip()
    if _OBJECT_ID.match(value):
        return Person(id=value.lower(), name=f"user {value[:8].lower()}")
    if _UPN.match(value):
        return Person(id=value.lower(), name=_name_of_upn(value))
    raise ValueError(f"{value!r} is neither a UPN (name@domain) nor an Entra object id")


def _name_of_upn(upn: str) -> str:
    """`ada.lovelace@contoso.com` -> `Ada Lovelace`: the text shown inside the mention.

    It must be plain (no card markdown), since Teams matches it character for character
    against the mention entity."""
    local = _MARKUP.sub("", upn.split("@", 1)[0].replace("_", "."))
    words = [word for word in _NAME_PARTS.split(local) if word]
    return " ".join(word[:1].upper() + word[1:] for word in words) or upn.lower()


def parse_owner_rule(entry: str) -> OwnerRule:
    """`PLANT001/=ada@contoso.com|bob@contoso.com` as a rule; ValueError says what is wrong."""
    prefix, sep, people_text = entry.partition("=")
    prefix = prefix.strip()
    if not sep or not prefix:
        raise ValueError(
            f"{entry!r} is not PREFIX=person (e.g. PLANT001/=ada@contoso.com|bob@contoso.com)"
        )
    names = [part for part in _PEOPLE_SEPARATORS.split(people_text) if part]
    if not names:
        raise ValueError(f"{entry!r} names nobody after '='")
    people = tuple(dict.fromkeys(person(name) for name in names))
    return OwnerRule(prefix=prefix.upper(), people=people)


def parse_owner_rules(entries: Iterable[str]) -> tuple[OwnerRule, ...]:
    return tuple(parse_owner_rule(entry) for entry in entries if entry.strip())


def owners_of(rules: Iterable[OwnerRule], circuit: str | None) -> tuple[Person, ...]:
    """Everyone whose rule matches `circuit`, the longest prefix first, each once."""
    if not circuit:
        return ()
    name = circuit.upper()
    matching = sorted(
        (rule for rule in rules if name.startswith(rule.prefix)),
        key=lambda rule: len(rule.prefix),
        reverse=True,
    )
    found = dict.fromkeys(someone for rule in matching for someone in rule.people)
    return tuple(found)[:MAX_MENTIONED]
