"""The delivery worker as its own process, for tests that kill it: the real dispatcher,
living cards, ProactiveMessenger and CloudAdapter, on a SQLite file.

Run `python -m tests.integration.delivery_worker DB_URL SPEED EPOCH [--webhook URL]
[--smtp-port N] [--owner NAME] [--claim-seconds S]`: it delivers every pending event
and exits 0. Several may run at once on one PostgreSQL database: their claims keep them
from sending anything twice. Time runs SPEED times faster than the wall clock from the
shared EPOCH (a Unix time), so Teams' limits and Retry-After are honoured in simulated
seconds while the test runs in real ones, and a restarted worker continues the same
timeline.

Routing is the only stand-in: each event names its conversation in the payload
(`conversation`), so a test can aim a burst at chosen conversations without setting up
subscriptions.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import aiohttp
from botbuilder.integration.aiohttp import CloudAdapter

from bot.auth import build_authentication
from bot.living_cards import LivingCards
from bot.notifiers import TeamsNotifier, WebhookNotifier
from bot.proactive import ProactiveMessenger
from config.settings import settings_from_mapping
from domain.destinations import Destination, TeamsConversation
from monitoring.dispatch import DEFAULT_CLAIM_TTL, DispatchPolicy, EventDispatcher
from monitoring.email_delivery import EmailSender, SmtpSettings
from monitoring.email_notifier import EmailNotifier
from monitoring.notifier import Notifier
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
    async def destinations(self, event: EventRecord) -> list[Destination]:
        conversation = event.payload.get("conversation")
        return [TeamsConversation(conversation)] if isinstance(conversation, str) else []


@dataclass(frozen=True)
class Sinks:
    """Where the webhook and email go besides Teams (nowhere by default)."""

    webhook_url: str = ""
    smtp_port: int = 0


def build_notifiers(
    db: Database,
    clock: FastClock,
    writes: GroupCommit,
    *,
    sinks: Sinks = Sinks(),
    http: aiohttp.ClientSession | None = None,
) -> list[Notifier]:
    """The real notifiers (Teams routed by payload, the webhook and email if asked)."""
    settings = settings_from_mapping({"MLBOT_DATABASE_URL": db.url})
    adapter = CloudAdapter(build_authentication(settings))
    conversations = ConversationStore(db)
    monitoring = MonitoringStore(db)
    messenger = ProactiveMessenger(adapter, "", conversations)
    gate = SendGate(SendPacer(), clock, sleep=clock.sleep)
    living = LivingCards(messenger, monitoring, PostedActivityStore(db, writes), clock, gate)
    notifiers: list[Notifier] = [RoutedTeamsNotifier(conversations, living)]
    if sinks.webhook_url:
        assert http is not None, "the webhook needs an HTTP session"
        session = http
        notifiers.append(WebhookNotifier(lambda: session, lambda: sinks.webhook_url))
    if sinks.smtp_port:
        sender = EmailSender(
            SmtpSettings(
                host="127.0.0.1",
                port=sinks.smtp_port,
                security="none",
                recipients=("ml@contoso.example",),
            )
        )
        notifiers.append(EmailNotifier(sender, monitoring, clock, lambda: timedelta(hours=4)))
    return notifiers


def build_dispatcher(
    db: Database,
    clock: FastClock,
    concurrency: int = 8,
    *,
    sinks: Sinks = Sinks(),
    http: aiohttp.ClientSession | None = None,
    owner: str | None = None,
    claim_ttl: timedelta = DEFAULT_CLAIM_TTL,
) -> EventDispatcher:
    writes = GroupCommit(db)  # one commit carries the keys and rows of concurrent sends
    return EventDispatcher(
        events=MonitoringStore(db),
        deliveries=DeliveryStore(db, writes),
        notifiers=build_notifiers(db, clock, writes, sinks=sinks, http=http),
        clock=clock,
        policy=DispatchPolicy(max_attempts=8, base_delay_s=2.0, max_delay_s=10.0),
        group_wait=lambda: timedelta(0),
        concurrency=concurrency,
        owner=owner,
        claim_ttl=claim_ttl,
    )


async def deliver_all(
    db_url: str,
    clock: FastClock,
    concurrency: int = 8,
    *,
    sinks: Sinks = Sinks(),
    owner: str | None = None,
    claim_ttl: timedelta = DEFAULT_CLAIM_TTL,
) -> None:
    """Deliver until no event is pending."""
    db = Database(db_url)
    async with aiohttp.ClientSession() as http:
        dispatcher = build_dispatcher(
            db, clock, concurrency, sinks=sinks, http=http, owner=owner, claim_ttl=claim_ttl
        )
        try:
            await dispatcher.run(
                asyncio.Event(), sleep=clock.sleep, idle_s=0.5, speed=1.0, until_drained=True
            )
        finally:
            await db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("db_url")
    parser.add_argument("speed", type=float)
    parser.add_argument("epoch", type=float)
    parser.add_argument("--webhook", default="")
    parser.add_argument("--smtp-port", type=int, default=0)
    parser.add_argument("--owner", default=None)
    parser.add_argument("--claim-seconds", type=float, default=DEFAULT_CLAIM_TTL.total_seconds())
    args = parser.parse_args()
    asyncio.run(
        deliver_all(
            args.db_url,
            FastClock(args.epoch, args.speed),
            sinks=Sinks(args.webhook, args.smtp_port),
            owner=args.owner,
            claim_ttl=timedelta(seconds=args.claim_seconds),
        )
    )


if __name__ == "__main__":
    main()
