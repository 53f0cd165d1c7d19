"""`notify me` end to end: in a personal chat, a person asks for their own failures, and
gets those of the circuit they own and of the job they submitted, and nothing else."""

from __future__ import annotations

from datetime import timedelta

from tests.conftest import SandboxBot, StartSandboxBot
from tests.integration.test_living_cards import kind_of
from tests.standins.connector import ConnectorStandIn
from tests.teams_payloads import USER, installation_update, personal_message

ADA = USER["aadObjectId"]


async def _play(bot: SandboxBot, seconds: float, *, submitter: str | None = None) -> None:
    engine = bot.runtime.engine
    assert engine is not None
    end = bot.clock.now() + timedelta(seconds=seconds)
    while bot.clock.now() < end:
        now = bot.clock.advance(15)
        bot.stack.tick(now)
        if submitter is not None:
            # Ada submitted PLANT002/CIRCUIT02's first attempt herself (Azure ML's createdBy).
            for job in bot.stack.azureml.jobs.values():
                if (
                    job.tags.get("circuit") == "PLANT002/CIRCUIT02"
                    and job.tags.get("attempt", "1") == "1"
                ):
                    job.created_by, job.created_by_type = submitter, "User"
        if now >= await engine.next_wakeup():
            await engine.tick()
        await bot.runtime.dispatcher.dispatch_pending()


async def _say(bot: SandboxBot, connector: ConnectorStandIn, text: str) -> str:
    before = len(connector.calls)
    status, _ = await bot.server.post(personal_message(text, connector.url))
    assert status in (200, 201)
    calls = await connector.wait_for(before + 1)
    return str(calls[before].body)


async def test_a_person_gets_the_failures_of_their_circuit_and_their_job(
    start_sandbox_bot: StartSandboxBot, connector: ConnectorStandIn
) -> None:
    bot = await start_sandbox_bot(
        {
            "MLBOT_CIRCUIT_OWNERS": f"PLANT002/CIRCUIT03={ADA}",
            "MLBOT_GROUP_WAIT_SECONDS": "0",
        }
    )
    install = installation_update("add", connector.url)
    status, _ = await bot.server.post(install)
    assert status in (200, 201)
    await connector.wait_for(1)
    chat = install["conversation"]["id"]
    assert "From now on" in await _say(bot, connector, "notify me")

    await _play(bot, 10 * 60, submitter=USER["name"])

    posted = [str(m.body) for m in connector.conversation_messages(chat) if kind_of(m) != ""]
    failures = [p for p in posted if "training failed" in p]
    assert any("PLANT002/CIRCUIT03" in p for p in failures), "the owned circuit's failure"
    assert any("PLANT002/CIRCUIT02" in p for p in failures), "the submitted job's failure"
    # Nothing else of the scenario reaches the personal chat.
    assert not any("still running" in p or "Retry queued" in p for p in posted)

    assert "Stopped." in await _say(bot, connector, "notify me off")
    refused = await _say(bot, connector, "notify everyone")
    assert "notify me" in refused
