"""Installing and removing the bot; proactive messages to where it is installed."""

from __future__ import annotations

from typing import Any

from tests.conftest import StartBot
from tests.standins.connector import ConnectorStandIn
from tests.teams_payloads import (
    CHANNEL_ID,
    TEAM_ID,
    bot_added_to_team,
    bot_removed_from_team,
    installation_update,
)


async def test_added_to_team_remembers_channel_and_welcomes(
    start_bot: StartBot, connector: ConnectorStandIn
) -> None:
    bot = await start_bot()
    status, _ = await bot.post(bot_added_to_team(connector.url))
    assert status == 201
    calls = await connector.wait_for(1)
    assert calls[0].path == f"/v3/conversations/{CHANNEL_ID}/activities"
    assert "is here" in str(connector.cards()[0])

    stored = await bot.runtime.conversations.all()
    assert [c.conversation_id for c in stored] == [CHANNEL_ID]
    assert stored[0].team_id == TEAM_ID and stored[0].service_url == connector.url
    kinds = await bot.runtime.conversations.event_kinds(CHANNEL_ID)
    assert "training_failed" in kinds and "training_started" not in kinds

    # A second add (Teams re-sends on upgrade) refreshes, without a second welcome.
    await bot.post(bot_added_to_team(connector.url))
    assert len(connector.calls) == 1
    actions = [entry.detail for entry in await bot.runtime.audit.recent()]
    assert actions[:2] == ["refreshed", "new"]


async def test_removed_from_team_forgets_it(
    start_bot: StartBot, connector: ConnectorStandIn
) -> None:
    bot = await start_bot()
    await bot.post(bot_added_to_team(connector.url))
    await connector.wait_for(1)
    status, _ = await bot.post(bot_removed_from_team(connector.url))
    assert status == 201
    assert await bot.runtime.conversations.all() == []
    assert await bot.runtime.conversations.event_kinds(CHANNEL_ID) == []


async def test_personal_install_and_uninstall(
    start_bot: StartBot, connector: ConnectorStandIn
) -> None:
    bot = await start_bot()
    await bot.post(installation_update("add", connector.url))
    await connector.wait_for(1)
    stored = await bot.runtime.conversations.all()
    assert stored[0].conversation_type == "personal"
    await bot.post(installation_update("remove", connector.url))
    assert await bot.runtime.conversations.all() == []


async def test_proactive_card_reaches_installed_conversation_and_updates_in_place(
    start_bot: StartBot, connector: ConnectorStandIn
) -> None:
    bot = await start_bot()
    await bot.post(bot_added_to_team(connector.url))
    await connector.wait_for(1)

    card: dict[str, Any] = {
        "type": "AdaptiveCard",
        "version": "1.5",
        "body": [{"type": "TextBlock", "text": "hi"}],
    }
    activity_id = await bot.runtime.messenger.send_card(CHANNEL_ID, card, summary="hello")
    calls = await connector.wait_for(2)
    assert calls[1].method == "POST"
    assert calls[1].path.startswith(f"/v3/conversations/{CHANNEL_ID}/activities")
    assert activity_id is not None and activity_id.startswith("activity-")

    card["body"][0]["text"] = "updated"
    await bot.runtime.messenger.update_card(CHANNEL_ID, activity_id, card)
    calls = await connector.wait_for(3)
    assert calls[2].method == "PUT"
    assert calls[2].path == f"/v3/conversations/{CHANNEL_ID}/activities/{activity_id}"
    assert connector.cards()[-1]["body"][0]["text"] == "updated"


async def test_proactive_to_unknown_conversation_is_a_clear_error(
    start_bot: StartBot,
) -> None:
    import pytest

    from bot.proactive import UnknownConversationError

    bot = await start_bot()
    with pytest.raises(UnknownConversationError):
        await bot.runtime.messenger.send_text("19:nowhere", "hello")


async def test_simultaneous_install_activities_store_once_and_welcome_once(
    start_bot: StartBot, connector: ConnectorStandIn
) -> None:
    import asyncio

    bot = await start_bot()
    # Teams sends both activities for one install at the same moment.
    results = await asyncio.gather(
        bot.post(installation_update("add", connector.url)),
        bot.post(installation_update("add", connector.url)),
        bot.post(installation_update("add", connector.url)),
    )
    assert [status for status, _ in results] == [201, 201, 201]
    await connector.wait_for(1)
    assert len(connector.calls) == 1  # one welcome
    assert len(await bot.runtime.conversations.all()) == 1
    details = sorted(entry.detail or "" for entry in await bot.runtime.audit.recent())
    assert details == ["new", "refreshed", "refreshed"]


async def test_team_deleted_forgets_the_team(
    start_bot: StartBot, connector: ConnectorStandIn
) -> None:
    bot = await start_bot()
    await bot.post(bot_added_to_team(connector.url))
    await connector.wait_for(1)
    deleted = bot_added_to_team(connector.url)
    del deleted["membersAdded"]
    deleted["channelData"]["eventType"] = "teamDeleted"
    status, _ = await bot.post(deleted)
    assert status == 201
    assert await bot.runtime.conversations.all() == []


async def test_other_people_joining_a_team_cost_no_connector_calls(
    start_bot: StartBot, connector: ConnectorStandIn
) -> None:
    bot = await start_bot()
    joined = bot_added_to_team(connector.url)
    joined["membersAdded"] = [{"id": "29:someone-new"}]
    status, _ = await bot.post(joined)
    assert status == 201
    assert connector.calls == [] and await bot.runtime.conversations.all() == []
