"""Facts about an incoming activity that the bot's logic needs, read once and typed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botbuilder.schema import Activity

from bot.mentions import addressed_name


@dataclass(frozen=True, slots=True)
class TurnFacts:
    conversation_id: str
    conversation_type: str | None  # personal | groupChat | channel
    tenant_id: str | None
    team_id: str | None
    user_id: str | None
    user_aad_id: str | None
    user_name: str | None
    bot_id: str | None
    # The name the bot was addressed by in this conversation (mention, else recipient).
    bot_name: str | None = None


def _channel_data(activity: Activity) -> dict[str, Any]:
    data = activity.channel_data
    return data if isinstance(data, dict) else {}


def tenant_of(activity: Activity) -> str | None:
    """Teams carries the tenant in channelData.tenant.id and conversation.tenantId."""
    tenant = _channel_data(activity).get("tenant")
    if isinstance(tenant, dict) and isinstance(tenant.get("id"), str):
        return str(tenant["id"])
    conversation = activity.conversation
    return getattr(conversation, "tenant_id", None) if conversation else None


def team_of(activity: Activity) -> str | None:
    team = _channel_data(activity).get("team")
    if isinstance(team, dict) and isinstance(team.get("id"), str):
        return str(team["id"])
    return None


def facts_of(activity: Activity) -> TurnFacts:
    conversation = activity.conversation
    sender = activity.from_property
    return TurnFacts(
        conversation_id=conversation.id if conversation else "",
        conversation_type=getattr(conversation, "conversation_type", None),
        tenant_id=tenant_of(activity),
        team_id=team_of(activity),
        user_id=sender.id if sender else None,
        user_aad_id=getattr(sender, "aad_object_id", None) if sender else None,
        user_name=sender.name if sender else None,
        bot_id=activity.recipient.id if activity.recipient else None,
        bot_name=addressed_name(
            [
                {"type": e.type, **(getattr(e, "additional_properties", None) or {})}
                for e in (activity.entities or [])
            ],
            activity.recipient.id if activity.recipient else None,
            activity.recipient.name if activity.recipient else None,
        ),
    )
