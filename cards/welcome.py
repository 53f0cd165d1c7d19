"""Posted once when mlbot is added to a team, chat or personal conversation."""

from __future__ import annotations

from cards.common import Card, card, heading, text


def render_welcome_card(bot_name: str, conversation_kind: str) -> Card:
    where = {
        "channel": "this channel",
        "groupChat": "this chat",
        "personal": "our chat",
    }.get(conversation_kind, "this conversation")
    return card(
        [
            heading(f"👋 {bot_name} is here"),
            text(
                "I watch Azure ML training jobs (one per circuit) and the Azure DevOps "
                f"pipelines that ship them, and I'll post alerts to {where}: failures, "
                "long-running jobs, approvals and deployments."
            ),
            text(f"Try `@{bot_name} status` now, or `@{bot_name} help` for every command."),
        ]
    )
