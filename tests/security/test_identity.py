"""Who someone is: the UPN or object id only; card signatures need a real key."""

from __future__ import annotations

import pytest

from config.settings import SettingsError, settings_from_mapping
from tests.conftest import StartBot
from tests.standins.connector import ConnectorStandIn
from tests.teams_payloads import USER, channel_message


async def test_a_mail_attribute_never_stands_in_for_the_upn(
    start_bot: StartBot, connector: ConnectorStandIn
) -> None:
    bot = await start_bot({"MLBOT_OPERATORS": "release.lead@contoso.com"})
    # A member whose changeable mail attribute names the operator; no UPN known.
    connector.members[USER["id"]] = {
        "name": USER["name"],
        "aadObjectId": USER["aadObjectId"],
        "email": "release.lead@contoso.com",
    }
    status, _ = await bot.post(channel_message("<at>mlbot</at> config", connector.url))
    assert status == 201
    calls = await connector.wait_for(1)
    assert "needs an operator" in str(calls[0].body)


@pytest.mark.parametrize("key", ["short", "x" * 31])
def test_a_short_card_signing_key_stops_start_up(key: str) -> None:
    with pytest.raises(SettingsError) as refused:
        settings_from_mapping({"MLBOT_CARD_SIGNING_KEY": key})
    assert "MLBOT_CARD_SIGNING_KEY" in str(refused.value)
    assert key not in str(refused.value).replace("MLBOT_CARD_SIGNING_KEY", "")


def test_a_long_card_signing_key_is_accepted() -> None:
    settings = settings_from_mapping({"MLBOT_CARD_SIGNING_KEY": "k" * 32})
    assert settings.card_signing_key.get_secret_value() == "k" * 32
