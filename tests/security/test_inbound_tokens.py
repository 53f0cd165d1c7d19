"""Only the Bot Framework channel's tokens, only Teams, only Teams' service URLs.

The bot's replies carry a fresh Bot Connector token to the activity's `serviceUrl`, so
an activity that names another address must never be processed, and a stored
conversation at such an address never gets a connector client.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from bot.auth import TokenValidationEndpoints
from bot.proactive import UnknownConversationError
from config.startup_checks import serving_refusals
from store.conversations import ConversationRecord
from tests.conftest import BotServer, FixedClock, StartBot, make_settings
from tests.standins.connector import ConnectorStandIn
from tests.standins.credentials import FixedTokenCredentialsFactory
from tests.standins.openid import ISSUER, OpenIdStandIn
from tests.teams_payloads import TENANT, bot_added_to_team, channel_message

APP_ID = "11111111-2222-4333-8444-555555555555"
# Entra's issuer for the Bot Framework tenant: what botbuilder calls an emulator token.
EMULATOR_ISSUER = "https://sts.windows.net/d6d49420-f39b-4df7-a1dc-d59a935871db/"


@pytest.fixture(scope="module")
def openid() -> Iterator[OpenIdStandIn]:
    stand_in = OpenIdStandIn().start()
    yield stand_in
    stand_in.stop()


@pytest.fixture
async def elsewhere() -> AsyncIterator[ConnectorStandIn]:
    """A second connector: where a forged activity would have the bot reply."""
    stand_in = ConnectorStandIn()
    await stand_in.start()
    yield stand_in
    await stand_in.stop()


async def _secured_bot(start_bot: StartBot, openid: OpenIdStandIn) -> BotServer:
    return await start_bot(
        {
            "MicrosoftAppId": APP_ID,
            "MicrosoftAppPassword": "not-used-in-tests",
            "MicrosoftAppTenantId": TENANT,
            "MLBOT_SERVICE_URL_HOSTS": "127.0.0.1",
        },
        token_endpoints=TokenValidationEndpoints(
            channel_openid_metadata_url=openid.metadata_url,
            channel_token_issuer=ISSUER,
            emulator_openid_metadata_url=openid.metadata_url,
        ),
        credentials_factory=FixedTokenCredentialsFactory(APP_ID),
    )


def _emulator_token(openid: OpenIdStandIn, service_url: str) -> str:
    # The shape of the bot's own outbound token: aud is the Bot Framework, appid is us.
    return openid.token(
        audience="https://api.botframework.com",
        service_url=service_url,
        issuer=EMULATOR_ISSUER,
        extra={"appid": APP_ID, "ver": "1.0"},
    )


def _on(service_url: str, channel: str = "msteams") -> dict[str, Any]:
    activity = channel_message("<at>mlbot</at> help", service_url)
    activity["channelId"] = channel
    return activity


@pytest.mark.parametrize("channel", ["directline", "msteams"])
async def test_an_emulator_shaped_token_is_refused(
    start_bot: StartBot,
    openid: OpenIdStandIn,
    connector: ConnectorStandIn,
    elsewhere: ConnectorStandIn,
    channel: str,
) -> None:
    bot = await _secured_bot(start_bot, openid)
    token = _emulator_token(openid, elsewhere.url)
    status, body = await bot.post(
        _on(elsewhere.url, channel), headers={"Authorization": f"Bearer {token}"}
    )
    assert status == 401 and body == {"error": "authentication failed"}
    assert elsewhere.calls == [] and connector.calls == []
    assert await bot.runtime.conversations.all() == []


async def test_a_channel_other_than_teams_is_refused(
    start_bot: StartBot, openid: OpenIdStandIn, connector: ConnectorStandIn
) -> None:
    bot = await _secured_bot(start_bot, openid)
    token = openid.token(audience=APP_ID, service_url=connector.url)
    status, _ = await bot.post(
        _on(connector.url, "directline"), headers={"Authorization": f"Bearer {token}"}
    )
    # The signing keys are endorsed for Teams only (401); the endpoint refuses too (403).
    assert status in (401, 403)
    assert connector.calls == []


async def test_local_mode_serves_teams_activities_only(
    start_bot: StartBot, connector: ConnectorStandIn
) -> None:
    bot = await start_bot()
    status, body = await bot.post(_on(connector.url, "directline"))
    assert status == 403 and "msteams" in body["error"]
    assert connector.calls == []


async def test_a_service_url_outside_the_allow_list_is_refused(
    start_bot: StartBot, openid: OpenIdStandIn, elsewhere: ConnectorStandIn
) -> None:
    bot = await _secured_bot(start_bot, openid)
    # The same machine under another name: not in MLBOT_SERVICE_URL_HOSTS.
    other = elsewhere.url.replace("127.0.0.1", "localhost")
    token = openid.token(audience=APP_ID, service_url=other)
    status, body = await bot.post(
        bot_added_to_team(other), headers={"Authorization": f"Bearer {token}"}
    )
    assert status == 403 and "serviceUrl" in body["error"]
    assert elsewhere.calls == []
    assert await bot.runtime.conversations.all() == []


async def test_local_mode_answers_only_service_urls_on_this_machine(
    start_bot: StartBot, connector: ConnectorStandIn
) -> None:
    bot = await start_bot()
    status, _ = await bot.post(_on("https://smba.attacker.example/amer/"))
    assert status == 403
    status, _ = await bot.post(_on(connector.url))
    assert status == 201


async def test_a_stored_conversation_outside_the_allow_list_gets_no_client(
    start_bot: StartBot, openid: OpenIdStandIn, elsewhere: ConnectorStandIn, clock: FixedClock
) -> None:
    bot = await _secured_bot(start_bot, openid)
    other = elsewhere.url.replace("127.0.0.1", "localhost")
    reference = {
        "serviceUrl": other,
        "channelId": "msteams",
        "conversation": {"id": "19:planted@thread.tacv2", "conversationType": "channel"},
        "bot": {"id": "28:bot-app-id"},
    }
    await bot.runtime.conversations.remember(
        ConversationRecord(
            conversation_id="19:planted@thread.tacv2",
            channel_id="msteams",
            service_url=other,
            tenant_id=TENANT,
            conversation_type="channel",
            team_id=None,
            title=None,
            reference=reference,
            installed_by=None,
            installed_at=clock(),
        )
    )
    with pytest.raises(UnknownConversationError):
        await bot.runtime.messenger.send_text("19:planted@thread.tacv2", "hello")
    assert elsewhere.calls == []


async def test_an_unauthenticated_body_is_refused_before_it_is_validated(
    start_bot: StartBot, openid: OpenIdStandIn, connector: ConnectorStandIn
) -> None:
    bot = await _secured_bot(start_bot, openid)
    unreadable = {**channel_message("hi", connector.url), "type": 7, "entities": "x"}
    status, body = await bot.post(unreadable)
    assert status == 401 and body == {"error": "authentication failed"}


async def test_activities_larger_than_64_kb_are_413(
    start_bot: StartBot, openid: OpenIdStandIn, connector: ConnectorStandIn
) -> None:
    bot = await _secured_bot(start_bot, openid)
    token = openid.token(audience=APP_ID, service_url=connector.url)
    big = channel_message("<at>mlbot</at> help " + "x" * 70_000, connector.url)
    status, _ = await bot.post(big, headers={"Authorization": f"Bearer {token}"})
    assert status == 413
    assert connector.calls == []


async def test_long_lists_in_an_activity_are_400(
    start_bot: StartBot, connector: ConnectorStandIn
) -> None:
    bot = await start_bot()
    crowded = {**bot_added_to_team(connector.url), "membersAdded": [{"id": "29:x"}] * 500}
    status, body = await bot.post(crowded)
    assert status == 400 and "membersAdded" in body["error"]
    assert connector.calls == []


async def test_the_tenant_list_defaults_to_the_bots_own_tenant(
    start_bot: StartBot, openid: OpenIdStandIn, connector: ConnectorStandIn
) -> None:
    bot = await _secured_bot(start_bot, openid)  # MicrosoftAppTenantId, no tenant list
    token = openid.token(audience=APP_ID, service_url=connector.url)
    headers = {"Authorization": f"Bearer {token}"}
    stranger = channel_message("<at>mlbot</at> status", connector.url, tenant="another-tenant")
    status, _ = await bot.post(stranger, headers=headers)
    assert status == 403
    assert connector.calls == []
    status, _ = await bot.post(
        channel_message("<at>mlbot</at> help", connector.url), headers=headers
    )
    assert status == 201


def test_an_app_id_without_any_tenant_does_not_start() -> None:
    settings = make_settings(MicrosoftAppId=APP_ID, MicrosoftAppType="MultiTenant")
    refusals = serving_refusals(settings)
    assert len(refusals) == 1 and "MLBOT_ALLOWED_TENANTS" in refusals[0]
    explicit = make_settings(MicrosoftAppId=APP_ID, MLBOT_ALLOWED_TENANTS=f"{TENANT},other")
    assert serving_refusals(explicit) == []
    assert explicit.tenant_allow_list == (TENANT, "other")


async def test_a_hanging_key_download_does_not_stall_other_requests(
    start_bot: StartBot, connector: ConnectorStandIn
) -> None:
    # A fresh stand-in: botbuilder caches keys per metadata URL, so this one is fetched.
    slow = OpenIdStandIn().start()
    slow.gate = threading.Event()
    try:
        bot = await _secured_bot(start_bot, slow)
        token = slow.token(audience=APP_ID, service_url=connector.url)
        pending = asyncio.ensure_future(
            bot.post(
                channel_message("<at>mlbot</at> help", connector.url),
                headers={"Authorization": f"Bearer {token}"},
            )
        )
        # The validation is now blocked in the download.
        assert await asyncio.to_thread(slow.entered.wait, 20)
        # Were the download on the bot's event loop, this would wait for the gate.
        health = await asyncio.wait_for(bot.get("/healthz"), timeout=20)
        # Answered while the download was still hanging, not after the gate gave up.
        assert health[0] == 200 and slow.waiting == 1 and not pending.done()
        slow.gate.set()
        status, _ = await pending
        assert status == 201
    finally:
        slow.gate.set()
        slow.stop()
