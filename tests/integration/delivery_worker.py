"""The delivery worker as its own process, for tests that kill it: the real dispatcher,
living cards, ProactiveMessenger and CloudAdapter, on a SQLite file.

Run `python -m tests.integration.delivery_worker DB_URL SPEED EPOCH`: it delivers every
pending event and exits 0. Time runs SPEED times faster than the wall clock from the
shared EPOCH (a Unix time), so Teams' limits and Retry-After are honoured in simulated
seconds while the test runs in real ones, and a restarted worker continues the same
timeline.

Routing is the only stand-in: each event names its conversation in the payload
(`conversation`), so a test can aim a burst at chosen conversations without setting up
subscriptions.
"""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from botbuilder.integration.aiohttp import CloudAdapter

from bot.auth import build_authentication
from bot.living_cards import LivingCards
from bot.notifiers import TeamsNotifier
from bot.proactive import ProactiveMessenger
from config.settings import settings_from_mapping
from monitoring.dispatch import DispatchPolicy, EventDispatcher
from monitoring.pacing import SendPacer
from monitoring.send_gate import SendGate
from store.conversations import ConversationRecord, ConversationStore
from store.database import Database
from store.deliveries import DeliveryStore
from store.group_commit import GroupCommit
from store.monitoring import EventRecord, MonitoringStore
from store.posted_activities import PostedActivityStore
from tests.teams_payloads import BOT_ID, TENANT, USER

SIM_EPOCH = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)


@dataclass(frozen=True)
class FastClock:
    """Simulated time: SIM_EPOCH at wall time `epoch`, then `speed` times as fast."""

    epoch: float
    speed: float

    def __call__(self) -> datetime:
        return SIM_EPOCH + timedelta(seconds=(time.time() - self.epoch) * self.speed)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(seconds, 0.0) / self.speed)


async def remember_conversation(
    store: ConversationStore, conversation_id: str, conversation_type: str, service_url: str
) -> None:
    """Store a conversation as an installation would: the bot may then post to it."""
    reference = {
        "bot": {"id": BOT_ID, "name": "mlbot"},
        "user": dict(USER),
        "conversation": {
            "id": conversation_id,
            "conversationType": conversation_type,
            "tenantId": TENANT,
        },
        "channelId": "msteams",
        "serviceUrl": service_url,
    }
    await store.remember(
        ConversationRecord(
            conversation_id=conversation_id,
            channel_id="msteams",
            service_url=service_url,
            tenant_id=TENANT,
            conversation_type=conversation_type,
            team_id=None,
            title=None,
            reference=reference,
            installed_by=None,
            installed_at=SIM_EPOCH,
        )
    )


class RoutedTeamsNotifier(TeamsNotifier):
    async def destinations(self, event: EventRecord) -> list[str]:
        conversation = event.payload.get("conversation")
        return [f"teams:{conversation}"] if isinstance(conversation, str) else []


def build_dispatcher(db: Database, clock: FastClock, concurrency: int = 8) -> EventDispatcher:
    settings = settings_from_mapping({"MLBOT_DATABASE_URL": db.url})
    adapter = CloudAdapter(build_authentication(settings))
    conversations = ConversationStore(db)
    monitoring = MonitoringStore(db)
    messenger = ProactiveMessenger(adapter, "", conversations)
    gate = SendGate(SendPacer(), clock, sleep=clock.sleep)
    writes = GroupCommit(db)  # one commit carries the keys and rows of concurrent sends
    living = LivingCards(messenger, monitoring, PostedActivityStore(db, writes), clock, gate)
    return EventDispatcher(
        events=monitoring,
        deliveries=DeliveryStore(db, writes),
        notifiers=[RoutedTeamsNotifier(conversations, messenger, living=living)],
        clock=clock,
        gate=gate,
        policy=DispatchPolicy(max_attempts=8, base_delay_s=2.0, max_delay_s=10.0),
        group_wait=lambda: timedelta(0),
        concurrency=concurrency,
    )


async def deliver_all(db_url: str, clock: FastClock, concurrency: int = 8) -> None:
    """Deliver until no event is pending."""
    db = Database(db_url)
    dispatcher = build_dispatcher(db, clock, concurrency)
    try:
        await dispatcher.run(
            asyncio.Event(), sleep=clock.sleep, idle_s=0.5, speed=1.0, until_drained=True
        )
    finally:
        await db.dispose()


def main() -> None:
    db_url, speed, epoch = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
    asyncio.run(deliver_all(db_url, FastClock(epoch, speed)))


if __name__ == "__main__":
    main()
