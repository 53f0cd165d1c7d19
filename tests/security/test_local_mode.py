"""Local mode (no MicrosoftAppId) serves only this machine and changes nothing real."""

from __future__ import annotations

from typing import Any

import pytest

from bot.card_signing import CardSigner
from cli import serve
from config.settings import SettingsError
from config.startup_checks import is_loopback_host, serving_refusals
from tests.conftest import FixedClock, StartBot, make_settings
from tests.standins.connector import ConnectorStandIn
from tests.teams_payloads import USER, card_action, channel_message

OPERATOR_AND_APPROVER = {
    "MLBOT_OPERATORS": USER["aadObjectId"],
    "MLBOT_APPROVERS": USER["aadObjectId"],
}


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "127.0.0.2", "127.255.0.9", "::1", "[::1]", "localhost"]
)
def test_every_loopback_address_counts_as_loopback(host: str) -> None:
    assert is_loopback_host(host)
    assert serving_refusals(make_settings(MLBOT_HOST=host)) == []


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.5", "192.168.1.20", "bot.example"])
def test_local_mode_refuses_an_address_beyond_this_machine(host: str) -> None:
    assert not is_loopback_host(host)
    refusals = serving_refusals(make_settings(MLBOT_HOST=host))
    assert len(refusals) == 1 and "MLBOT_HOST" in refusals[0]


@pytest.mark.parametrize(
    "setting",
    [
        {"MLBOT_DEVOPS_ORG_URL": "https://dev.azure.com/contoso"},
        {"MLBOT_DEVOPS_PAT": "a-personal-access-token"},
        {"MLBOT_AZUREML_WORKSPACES": "ws-prod"},
        {"MLBOT_AZURE_SUBSCRIPTION_ID": "00000000-0000-0000-0000-000000000000"},
        {"MicrosoftAppPassword": "a-password"},
    ],
)
def test_local_mode_refuses_azure_credentials(setting: dict[str, str]) -> None:
    refusals = serving_refusals(make_settings(**setting))
    assert len(refusals) == 1
    assert next(iter(setting)) in refusals[0]
    assert next(iter(setting.values())) not in refusals[0]  # the value is never shown


async def test_serve_stops_before_listening_on_a_forbidden_combination() -> None:
    settings = make_settings(
        MLBOT_HOST="0.0.0.0",
        MLBOT_DEVOPS_ORG_URL="https://dev.azure.com/contoso",
        MLBOT_DEVOPS_PAT="a-personal-access-token",
    )
    with pytest.raises(SettingsError) as refused:
        await serve(settings)
    assert "MLBOT_HOST" in str(refused.value) and "MLBOT_DEVOPS_PAT" in str(refused.value)


def test_an_app_id_lifts_the_local_mode_limits() -> None:
    settings = make_settings(
        MicrosoftAppId="11111111-2222-4333-8444-555555555555",
        MicrosoftAppTenantId="72f988bf-0000-4000-8000-000000000001",
        MLBOT_HOST="0.0.0.0",
        MLBOT_DEVOPS_ORG_URL="https://dev.azure.com/contoso",
    )
    assert serving_refusals(settings) == []


async def _reply_to(bot: Any, connector: ConnectorStandIn, text: str) -> str:
    before = len(connector.calls)
    status, _ = await bot.post(channel_message(f"<at>mlbot</at> {text}", connector.url))
    assert status == 201
    calls = await connector.wait_for(before + 1)
    return str(calls[before].body)


@pytest.mark.parametrize(
    "command", ["retry PLANT001/CIRCUIT01", "rollback prod", "rollback staging"]
)
async def test_local_mode_refuses_changing_commands_by_default(
    start_bot: StartBot, connector: ConnectorStandIn, command: str
) -> None:
    bot = await start_bot({"MLBOT_LOCAL_ACTIONS": "false", **OPERATOR_AND_APPROVER})
    reply = await _reply_to(bot, connector, command)
    assert "local mode" in reply and "MLBOT_LOCAL_ACTIONS" in reply
    audit = await bot.runtime.audit.recent()
    assert audit[0].outcome == "refused"


async def test_local_mode_refuses_a_signed_approve_button(
    start_bot: StartBot, connector: ConnectorStandIn, clock: FixedClock
) -> None:
    key = "a-card-signing-key-known-to-the-caller-0123"
    bot = await start_bot(
        {"MLBOT_LOCAL_ACTIONS": "false", "MLBOT_CARD_SIGNING_KEY": key, **OPERATOR_AND_APPROVER}
    )
    data = CardSigner(key.encode(), clock).sign(
        "approval.approve", {"approval_id": "approval-1", "environment": "prod"}
    )
    status, body = await bot.post(card_action("approval.approve", data, connector.url))
    assert status == 200
    assert "local mode" in str(body)
    audit = await bot.runtime.audit.recent()
    assert audit[0].action == "card:approval.approve" and audit[0].outcome == "refused"
