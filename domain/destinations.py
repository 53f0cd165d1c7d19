"""Where an event can be delivered: a Teams conversation, the Workflows webhook, email.

Destinations are values. Routing names them, the dispatcher plans and claims sends per
destination, and each notifier takes only its own kind. In the database a destination
is kept as readable text (`key`): `teams:<conversation id>`, `webhook`, `email` — the
same text earlier versions stored, so rows written before keep their meaning.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

_TEAMS_PREFIX = "teams:"


@dataclass(frozen=True, slots=True)
class TeamsConversation:
    """A conversation the bot is installed in (channel, group chat or personal chat)."""

    conversation_id: str

    @property
    def key(self) -> str:
        return f"{_TEAMS_PREFIX}{self.conversation_id}"

    @property
    def label(self) -> str:
        return self.key


@dataclass(frozen=True, slots=True)
class Webhook:
    """The Teams Workflows webhook (`teamsWebhookUrl`; one per installation)."""

    key: ClassVar[str] = "webhook"
    label: ClassVar[str] = "the Workflows webhook"


@dataclass(frozen=True, slots=True)
class Email:
    """The ML engineers' mailing list (`mlEngineersEmail`)."""

    key: ClassVar[str] = "email"
    label: ClassVar[str] = "email"


Destination = TeamsConversation | Webhook | Email

WEBHOOK = Webhook()
EMAIL = Email()


def parse_destination(text: str) -> Destination:
    """The destination stored as `text` (its `key`). Raises ValueError."""
    if text == Webhook.key:
        return WEBHOOK
    if text == Email.key:
        return EMAIL
    if text.startswith(_TEAMS_PREFIX) and len(text) > len(_TEAMS_PREFIX):
        return TeamsConversation(text[len(_TEAMS_PREFIX) :])
    raise ValueError(f"not a delivery destination: {text!r}")
