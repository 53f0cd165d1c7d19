"""Posted once when mlbot is added to a team, chat or personal conversation."""

from __future__ import annotations

from cards.common import Card, card, heading, text


def render_welcome_card(bot_name: str, conversation_kind: str) -> Card:
    where = {
        "channel": "this channel",
        "groupChat": "this chat",
        "personal": "our chat",
    }.get(conversation_kind, "this conversation")
    if conversation_kind == "personal":
        # A personal chat receives nothing until its person subscribes.
        alerts = (
            "I watch Azure ML training jobs (one per circuit) and the Azure DevOps "
            "pipelines that ship them. Type **subscribe** to get alerts here too: failures, "
            "long-running jobs, approvals and deployments (**subscriptions** to fine-tune)."
        )
    else:
        alerts = (
            "I watch Azure ML training jobs (one per circuit) and the Azure DevOps "
            f"pipelines that ship them, and I'll post alerts to {where}: failures, "
            "long-running jobs, approvals and deployments."
        )
    if conversation_kind == "personal":
        # Everything said in a personal chat is for the bot: no mention needed.
        try_it = "Try **status** now, or **help** for every command."
    else:
        try_it = f"Try **@{bot_name} status** now, or **@{bot_name} help** for every command."
    return card([heading(f"👋 {bot_name} is here"), text(alerts), text(try_it)])
