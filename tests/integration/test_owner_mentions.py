"""Failures and waiting approvals @mention the people who can act, as Teams notifies them.

The sandbox plays the default scenario (PLANT002/CIRCUIT02 and PLANT002/CIRCUIT03 fail);
the bot runs over real HTTP; the Bot Connector stand-in keeps what Teams would show.
"""

from __future__ import annotations

from typing import Any

from sandbox.card_catalog import sample_events
from store.monitoring import NewEvent, Observation
from tests.conftest import StartSandboxBot
from tests.integration.test_living_cards import install_in_channel, kind_of, play
from tests.standins.connector import ConnectorStandIn, Message
from tests.teams_payloads import CHANNEL_ID

ADA = "ada.lovelace@contoso.com"
PRIYA = "00000000-0000-0000-0000-0000000e2e11"
OWNERS = {"MLBOT_CIRCUIT_OWNERS": f"PLANT002/={ADA}, plant002/circuit03={PRIYA}"}


def content(message: Message) -> dict[str, Any]:
    found: dict[str, Any] = message.body["attachments"][0]["content"]
    return found


def mentioned(message: Message) -> dict[str, str]:
    """Mention text -> the id Teams notifies, checked to appear in the card's text."""
    card = content(message)
    entities = card.get("msteams", {}).get("entities", [])
    shown = str(card["body"])
    found = {}
    for entity in entities:
        assert entity["type"] == "mention"
        assert entity["text"] in shown, "a mention entity whose text the card does not show"
        found[entity["text"]] = entity["mentioned"]["id"]
    return found


async def test_a_failure_mentions_the_owners_of_its_circuit(
    start_sandbox_bot: StartSandboxBot, connector: ConnectorStandIn
) -> None:
    bot = await start_sandbox_bot({**OWNERS, "MLBOT_GROUP_WAIT_SECONDS": "0"})
    await install_in_channel(bot, connector)
    await play(bot, 20 * 60)

    replies = [m for m in connector.conversation_messages(CHANNEL_ID) if kind_of(m) == "reply"]
    failed = [m for m in replies if "training failed" in str(content(m)["body"][0])]
    assert failed
    circuit03 = [m for m in failed if "PLANT002/CIRCUIT03" in str(content(m)["body"][0])]
    assert circuit03, "the scenario's CIRCUIT03 failure was not posted"
    # The circuit's own owner first, then the plant's; both are notified.
    expected = {"<at>user 00000000</at>": PRIYA, "<at>Ada Lovelace</at>": ADA}
    assert mentioned(circuit03[0]) == expected
    assert all(ADA in mentioned(m).values() for m in failed)
    # The living session card changes in place: it notifies nobody.
    cards = [m for m in connector.conversation_messages(CHANNEL_ID) if kind_of(m) == "session_card"]
    assert cards and all(not mentioned(m) for m in cards)


async def test_circuits_without_an_owner_mention_nobody(
    start_sandbox_bot: StartSandboxBot, connector: ConnectorStandIn
) -> None:
    bot = await start_sandbox_bot(
        {"MLBOT_CIRCUIT_OWNERS": f"PLANT009/={ADA}", "MLBOT_GROUP_WAIT_SECONDS": "0"}
    )
    await install_in_channel(bot, connector)
    await play(bot, 20 * 60)

    replies = [m for m in connector.conversation_messages(CHANNEL_ID) if kind_of(m) == "reply"]
    assert replies and all(not mentioned(m) for m in replies)
    assert all("Owners:" not in str(content(m)["body"]) for m in replies)


async def test_an_approval_card_mentions_the_approvers_of_its_environment(
    start_sandbox_bot: StartSandboxBot, connector: ConnectorStandIn
) -> None:
    bot = await start_sandbox_bot(
        {
            "MLBOT_APPROVERS": "lena@contoso.example",
            "MLBOT_CARD_SIGNING_KEY": "card-signing-key-for-tests-0123456789",
        }
    )
    await install_in_channel(bot, connector)
    record = sample_events(bot.clock.now())["approval-required"]
    await bot.runtime.monitoring.apply(
        Observation(bot.clock.now(), events=[NewEvent("t/a", record.kind, dict(record.payload))])
    )
    await bot.runtime.dispatcher.dispatch_pending()

    runs = [m for m in connector.conversation_messages(CHANNEL_ID) if kind_of(m) == "run_card"]
    assert len(runs) == 1
    assert mentioned(runs[0]) == {"<at>Lena</at>": "lena@contoso.example"}
    assert "Approvers: <at>Lena</at>" in str(content(runs[0])["body"])
