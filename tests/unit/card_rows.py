"""Reading the job rows back out of a card that lists jobs (`status`, the living card)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class ShownRow:
    circuit: str
    state: str
    elapsed: str
    detail: str  # "attempt N · [name](url)"
    # Every TextBlock of the row that must stay on one line.
    unwrapped: tuple[str, ...]


def job_rows(card: dict[str, Any]) -> list[ShownRow]:
    rows = []
    for element in card["body"]:
        if element.get("type") != "ColumnSet":
            continue
        left, right = element["columns"]
        circuit, detail = left["items"]
        state, elapsed = right["items"]
        blocks = (circuit, detail, state, elapsed)
        rows.append(
            ShownRow(
                circuit=circuit["text"],
                state=state["text"],
                elapsed=elapsed["text"],
                detail=detail["text"],
                unwrapped=tuple(b["text"] for b in blocks if b.get("wrap") is False),
            )
        )
    return rows
