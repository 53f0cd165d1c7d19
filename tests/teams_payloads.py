"""Teams-shaped activities, as the Bot Connector really delivers them."""

from __future__ import annotations

import uuid
from typing import Any

BOT_ID = "28:bot-app-id"
TENANT = "72f988bf-0000-4000-8000-000000000001"
TEAM_ID = "19:team-general@thread.tacv2"
CHANNEL_ID = "19:team-general@thread.tacv2"
USER = {
    "id": "29:user-1",
    "name": "Ada Lovelace",
    "aadObjectId": "00000000-aaaa-4000-8000-0000000000a1",
}


def _base(kind: str, service_url: str, conversation: dict[str, Any], tenant: str) -> dict[str, Any]:
    return {
        "type": kind,
        "id": f"1{uuid.uuid4().int % 10**12:012d}",
        "timestamp": "2026-11-29T08:00:00.000Z",
        "serviceUrl": service_url,
        "channelId": "msteams",
        "from": dict(USER),
        "conversation": conversation,
        "recipient": {"id": BOT_ID, "name": "mlbot"},
        "channelData": {"tenant": {"id": tenant}},
        "locale": "en-US",
    }


def channel_message(
    text: str,
    service_url: str,
    *,
    bot_name: str = "mlbot",
    tenant: str = TENANT,
    with_entities: bool = True,
) -> dict[str, Any]:
    """A message in a team channel: the bot's mention leads the text, as Teams sends it."""
    conversation = {
        "isGroup": True,
        "conversationType": "channel",
        "tenantId": tenant,
        "id": f"{CHANNEL_ID};messageid=1732867200000",
    }
    activity = _base("message", service_url, conversation, tenant)
    activity["text"] = text
    activity["textFormat"] = "plain"
    activity["channelData"].update(
        {
            "teamsChannelId": CHANNEL_ID,
            "teamsTeamId": TEAM_ID,
            "channel": {"id": CHANNEL_ID},
            "team": {"id": TEAM_ID},
        }
    )
    if with_entities:
        activity["entities"] = [
            {
                "type": "mention",
                "text": f"<at>{bot_name}</at>",
                "mentioned": {"id": BOT_ID, "name": bot_name},
            },
            {"type": "clientInfo", "locale": "en-US", "country": "US", "platform": "Web"},
        ]
    return activity


def personal_message(text: str, service_url: str, *, tenant: str = TENANT) -> dict[str, Any]:
    conversation = {
        "conversationType": "personal",
        "tenantId": tenant,
        "id": "a:1personal-chat-id",
    }
    activity = _base("message", service_url, conversation, tenant)
    activity["text"] = text
    return activity


def bot_added_to_team(service_url: str, *, tenant: str = TENANT) -> dict[str, Any]:
    conversation = {
        "isGroup": True,
        "conversationType": "channel",
        "tenantId": tenant,
        "id": CHANNEL_ID,
    }
    activity = _base("conversationUpdate", service_url, conversation, tenant)
    activity["membersAdded"] = [{"id": BOT_ID}]
    activity["channelData"].update(
        {"eventType": "teamMemberAdded", "team": {"id": TEAM_ID, "name": "ML Ops"}}
    )
    return activity


def bot_removed_from_team(service_url: str, *, tenant: str = TENANT) -> dict[str, Any]:
    activity = bot_added_to_team(service_url, tenant=tenant)
    del activity["membersAdded"]
    activity["membersRemoved"] = [{"id": BOT_ID}]
    activity["channelData"]["eventType"] = "teamMemberRemoved"
    return activity


def installation_update(action: str, service_url: str, *, tenant: str = TENANT) -> dict[str, Any]:
    conversation = {"conversationType": "personal", "tenantId": tenant, "id": "a:1personal-chat-id"}
    activity = _base("installationUpdate", service_url, conversation, tenant)
    activity["action"] = action
    return activity


def card_action(
    verb: str,
    data: dict[str, Any],
    service_url: str,
    *,
    reply_to_id: str = "activity-1",
    user: dict[str, Any] | None = None,
    tenant: str = TENANT,
) -> dict[str, Any]:
    """A button press on an Action.Execute card in a channel (invoke adaptiveCard/action)."""
    activity = channel_message("", service_url, tenant=tenant, with_entities=False)
    activity["type"] = "invoke"
    activity["name"] = "adaptiveCard/action"
    activity["replyToId"] = reply_to_id
    del activity["text"]
    activity["value"] = {
        "action": {"type": "Action.Execute", "id": "btn", "verb": verb, "data": data},
        "trigger": "manual",
    }
    if user is not None:
        activity["from"] = user
    return activity
