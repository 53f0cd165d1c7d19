"""Checks on an incoming activity's JSON before anything acts on it (pure).

Bot Framework's own deserializer accepts almost anything; we refuse early, with a
reason the sender can read, what the bot could not handle safely.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

# Activity types the Bot Framework defines; anything else is refused with 400.
KNOWN_ACTIVITY_TYPES = frozenset(
    {
        "message",
        "contactRelationUpdate",
        "conversationUpdate",
        "typing",
        "endOfConversation",
        "event",
        "invoke",
        "invokeResponse",
        "deleteUserData",
        "messageUpdate",
        "messageDelete",
        "installationUpdate",
        "messageReaction",
        "suggestion",
        "trace",
        "handoff",
        "command",
        "commandResult",
    }
)


# Teams sends a handful of entities, attachments or members; far more is not Teams.
MAX_LIST_ITEMS = 256


def _is_str(value: Any) -> bool:
    return isinstance(value, str)


def activity_problems(body: Any) -> list[str]:
    """Every reason this body is not an activity mlbot can process; empty when fine."""
    if not isinstance(body, dict):
        return ["the body must be a JSON object (a Bot Framework activity)"]
    problems: list[str] = []
    kind = body.get("type")
    if not _is_str(kind) or not kind:
        problems.append("'type' is required and must be a string")
    elif kind not in KNOWN_ACTIVITY_TYPES:
        problems.append(f"unknown activity type {kind!r}")

    service_url = body.get("serviceUrl")
    if not _is_str(service_url) or not service_url:
        problems.append("'serviceUrl' is required and must be a string")
    else:
        parsed = urlparse(service_url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            problems.append("'serviceUrl' must be an http(s) URL")

    conversation = body.get("conversation")
    if not isinstance(conversation, dict) or not _is_str(conversation.get("id")):
        problems.append("'conversation.id' is required and must be a string")

    for account in ("from", "recipient"):
        value = body.get(account)
        if value is not None and (not isinstance(value, dict) or not _is_str(value.get("id", ""))):
            problems.append(f"'{account}' must be an object with a string 'id'")

    for key in ("text", "id", "channelId", "replyToId", "locale", "name", "action"):
        if key in body and body[key] is not None and not _is_str(body[key]):
            problems.append(f"'{key}' must be a string")
    for key in ("entities", "attachments", "membersAdded", "membersRemoved"):
        value = body.get(key)
        if value is not None and (
            not isinstance(value, list) or not all(isinstance(v, dict) for v in value)
        ):
            problems.append(f"'{key}' must be a list of objects")
        elif isinstance(value, list) and len(value) > MAX_LIST_ITEMS:
            problems.append(f"'{key}' has more than {MAX_LIST_ITEMS} items")
    channel_data = body.get("channelData")
    if channel_data is not None and not isinstance(channel_data, dict):
        problems.append("'channelData' must be an object")
    if kind == "invoke" and body.get("name") == "adaptiveCard/action":
        problems.extend(_card_action_problems(body.get("value")))
    return problems


def _card_action_problems(value: Any) -> list[str]:
    # botbuilder answers anything but a well-formed Action.Execute with an exception
    # object as the invoke body, which cannot be serialized (a 500).
    action = value.get("action") if isinstance(value, dict) else None
    if not isinstance(action, dict):
        return ["an 'adaptiveCard/action' invoke needs 'value.action' as an object"]
    if action.get("type") != "Action.Execute":
        return ["'value.action.type' must be 'Action.Execute'"]
    if "verb" in action and not _is_str(action["verb"]):
        return ["'value.action.verb' must be a string"]
    return []
