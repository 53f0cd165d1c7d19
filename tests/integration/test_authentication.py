"""Inbound Bot Framework JWT validation through botbuilder's real path, over HTTP.

Every bad token must be a 401 with nothing processed; a tenant outside the allowlist
is a 403 with an audit row.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from bot.auth import TokenValidationEndpoints
from tests.conftest import BotServer, StartBot
from tests.standins.connector import ConnectorStandIn
from tests.standins.credentials import OUTBOUND_TOKEN, FixedTokenCredentialsFactory
from tests.standins.openid import ISSUER, OpenIdStandIn, new_key
from tests.teams_payloads import TENANT, bot_added_to_team, channel_message

APP_ID = "11111111-2222-4333-8444-555555555555"


@pytest.fixture(scope="module")
def openid() -> Iterator[OpenIdStandIn]:
    stand_in = OpenIdStandIn().start()
    yield stand_in
    stand_in.stop()


async def _secured_bot(start_bot: StartBot, openid: OpenIdStandIn, **settings: Any) -> BotServer:
    return await start_bot(
        {
            "MicrosoftAppId": APP_ID,
            "MicrosoftAppPassword": "not-used-in-tests",
            # The connector stand-in listens on this machine.
            "MLBOT_SERVICE_URL_HOSTS": "127.0.0.1",
            **settings,
        },
        token_endpoints=TokenValidationEndpoints(
            channel_openid_metadata_url=openid.metadata_url,
            channel_token_issuer=ISSUER,
            emulator_openid_metadata_url=openid.metadata_url,
        ),
        credentials_factory=FixedTokenCredentialsFactory(APP_ID),
    )


async def test_valid_token_is_processed_and_reply_is_signed(
    start_bot: StartBot, connector: ConnectorStandIn, openid: OpenIdStandIn
) -> None:
    bot = await _secured_bot(start_bot, openid)
    token = openid.token(audience=APP_ID, service_url=connector.url)
    status, _ = await bot.post(
        channel_message("<at>mlbot</at> help", connector.url),
        headers={"Authorization": f"Bearer {token}"},
    )
    assert status == 201
    calls = await connector.wait_for(1)
    assert calls[0].authorization == f"Bearer {OUTBOUND_TOKEN}"


def _bad_tokens(openid: OpenIdStandIn, service_url: str) -> dict[str, str | None]:
    good: dict[str, Any] = {"audience": APP_ID, "service_url": service_url}
    return {
        "missing": None,
        "garbage": "Bearer not.a.jwt",
        "wrong scheme": f"Basic {openid.token(**good)}",
        "expired": f"Bearer {openid.token(**good, expires_in=-3600)}",
        "forged signature": f"Bearer {openid.token(**good, key=new_key())}",
        "unknown key": f"Bearer {openid.token(**good, kid='no-such-key')}",
        "wrong audience": (
            f"Bearer {openid.token(audience='someone-else', service_url=service_url)}"
        ),
        "wrong issuer": f"Bearer {openid.token(**good, issuer='https://issuer.invalid')}",
        "serviceUrl mismatch": (
            f"Bearer {openid.token(audience=APP_ID, service_url='https://smba.invalid/amer/')}"
        ),
    }


async def test_every_bad_token_is_401_and_nothing_is_processed(
    start_bot: StartBot, connector: ConnectorStandIn, openid: OpenIdStandIn
) -> None:
    bot = await _secured_bot(start_bot, openid)
    for case, header in _bad_tokens(openid, connector.url).items():
        headers = {"Authorization": header} if header else {}
        status, body = await bot.post(bot_added_to_team(connector.url), headers=headers)
        assert status == 401, f"{case}: got {status} {body}"
        assert body == {"error": "authentication failed"}, case
    # Nothing was processed: no welcome card sent, no conversation stored.
    assert connector.calls == []
    assert await bot.runtime.conversations.all() == []
    # The server is still healthy after all of that.
    assert (await bot.get("/healthz"))[0] == 200


async def test_tenant_outside_allowlist_is_403_and_audited(
    start_bot: StartBot, connector: ConnectorStandIn, openid: OpenIdStandIn
) -> None:
    bot = await _secured_bot(start_bot, openid, MLBOT_ALLOWED_TENANTS=f"{TENANT},other")
    token = openid.token(audience=APP_ID, service_url=connector.url)
    headers = {"Authorization": f"Bearer {token}"}
    status, _ = await bot.post(
        channel_message("<at>mlbot</at> status", connector.url, tenant="intruder-tenant"),
        headers=headers,
    )
    assert status == 403
    assert connector.calls == []
    audit = await bot.runtime.audit.recent()
    assert audit[0].outcome == "refused" and audit[0].tenant_id == "intruder-tenant"

    status, _ = await bot.post(
        channel_message("<at>mlbot</at> status", connector.url), headers=headers
    )
    assert status == 201
    await connector.wait_for(1)


async def test_local_mode_accepts_unauthenticated_activities(
    start_bot: StartBot, connector: ConnectorStandIn
) -> None:
    bot = await start_bot()
    assert bot.runtime.settings.local_mode
    status, _ = await bot.post(channel_message("<at>mlbot</at> help", connector.url))
    assert status == 201
    calls = await connector.wait_for(1)
    assert calls[0].authorization is None  # no app id: replies carry no token
