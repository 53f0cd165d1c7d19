"""The body a Teams Workflows webhook accepts: one message carrying one Adaptive Card.

Office 365 connector webhooks are retired; Workflows ("Post to a channel when a webhook
request is received") takes this envelope and may refuse cards above version 1.4, so pass
it a card rendered with `version="1.4"`.
"""

from __future__ import annotations

from typing import Any

from cards.common import CARD_CONTENT_TYPE, Card


def webhook_payload(card: Card) -> dict[str, Any]:
    """Wrap `card` in the Workflows webhook message body."""
    return {
        "type": "message",
        "attachments": [
            {
                "contentType": CARD_CONTENT_TYPE,
                "contentUrl": None,
                "content": card,
            }
        ],
    }
