"""@mentions in a card: a line naming people, and the entities that make Teams notify them.

Teams turns `<at>Ada Lovelace</at>` in a TextBlock into a mention when the card carries
a `msteams.entities` entry with exactly that text and the person's UPN or Entra object
id. Each person is mentioned once per card.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cards.common import Card, text
from domain.owners import Person


def mention_text(someone: Person) -> str:
    return f"<at>{someone.name}</at>"


def with_mentions(card: Card, people: Sequence[Person], label: str) -> Card:
    """`card` with a `label: @a, @b` line at the end of its body and their entities.

    Returns a new card; the original is left as it was (cards are cached and reused).
    """
    known = {
        entity.get("mentioned", {}).get("id")
        for entity in card.get("msteams", {}).get("entities", [])
        if isinstance(entity, dict)
    }
    fresh = [someone for someone in dict.fromkeys(people) if someone.id not in known]
    if not fresh:
        return card
    entities: list[dict[str, Any]] = [
        {
            "type": "mention",
            "text": mention_text(someone),
            "mentioned": {"id": someone.id, "name": someone.name},
        }
        for someone in fresh
    ]
    line = text(f"{label}: " + ", ".join(mention_text(someone) for someone in fresh))
    msteams = dict(card.get("msteams", {}))
    msteams["entities"] = [*msteams.get("entities", []), *entities]
    return {**card, "body": [*card.get("body", []), line], "msteams": msteams}
