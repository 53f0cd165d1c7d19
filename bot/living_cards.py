"""How events become Teams messages: one living card per session, details in its thread.

- A session's events keep one card per conversation up to date (PUT, in place), rendered
  from the store so it always shows the session's latest state. A job that starts or
  completes only changes that card: recoveries update it rather than add noise.
- Failures, timeouts, reminders and retries are details: after the card is updated they
  go as a reply in the card's thread (team channels) or as a message of their own (chats,
  which have no threads). Several failures of one session arrive as one grouped reply.
- Everything else (deployments, approvals, rollbacks) is a card of its own.

Every message is created at most once per key (see `store.posted_activities`): a resend
after a crash updates the stored activity or skips the post. Sends to several
conversations run at once, but only one message at a time (`unconfirmed_posts`) is
between its POST and the commit of its id, so a crash leaves at most one message that
may show twice.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import OrderedDict
from collections.abc import Callable, Sequence
from datetime import datetime

from msrest.exceptions import HttpOperationError

from bot.proactive import ProactiveMessenger, UnknownConversationError
from cards.common import Card
from cards.events import event_summary, render_event_card
from cards.session import group_summary, render_group_card, render_session_card, session_summary
from domain.destinations import TeamsConversation
from domain.events import LivingCard, kinds_where
from monitoring.send_gate import SendGate
from store.monitoring import EventRecord, MonitoringStore
from store.posted_activities import (
    MESSAGE,
    POSTED,
    REPLY,
    RUN_CARD,
    SESSION_CARD,
    PostedActivity,
    PostedActivityStore,
    message_key,
)

log = logging.getLogger(__name__)

_SHOWN_CARDS = 2000  # living cards whose last content is remembered (LRU)

# A job that starts or ends well: the card changes, nothing else is posted.
CARD_ONLY_KINDS = kinds_where(living=LivingCard.SESSION)
# Something people should read: a reply under the card as well.
DETAIL_KINDS = kinds_where(living=LivingCard.SESSION_DETAIL)
# Failures of one session close together are announced together.
GROUPED_KINDS = kinds_where(grouped=True)
SESSION_KINDS = CARD_ONLY_KINDS | DETAIL_KINDS

# Azure DevOps events that tell the story of one pipeline run.
RUN_KINDS = kinds_where(living=LivingCard.RUN)

Decorate = Callable[[Card, EventRecord], Card]


def pipeline_run_of(event: EventRecord) -> str | None:
    """The run an Azure DevOps event belongs to (its living card's identity), if known."""
    run_id = event.payload.get("run_id")
    if event.kind not in RUN_KINDS or not isinstance(run_id, int) or isinstance(run_id, bool):
        return None
    return f"{event.payload.get('pipeline') or ''}#{run_id}"


# Statuses that prove the connector did not create the activity: safe to post again.
_REFUSED = frozenset({400, 401, 403, 404, 409, 410, 412, 413, 429})


def _status(exc: HttpOperationError) -> int:
    response = getattr(exc, "response", None)
    return int(getattr(response, "status_code", 0) or 0)


class LivingCards:
    def __init__(
        self,
        messenger: ProactiveMessenger,
        monitoring: MonitoringStore,
        posted: PostedActivityStore,
        clock: Callable[[], datetime],
        gate: SendGate,
        *,
        unconfirmed_posts: int = 1,
    ) -> None:
        if unconfirmed_posts < 1:
            raise ValueError(f"unconfirmed_posts must be at least 1, got {unconfirmed_posts}")
        self._messenger = messenger
        self._monitoring = monitoring
        self._posted = posted
        self._clock = clock
        # Every request to Teams takes its turn here, under Teams' rate limits.
        self._gate = gate
        # How many messages may be between their POST and the commit of their id at
        # once: what a crash can leave in doubt. One keeps "at most one message may show
        # twice per crash"; more lets new messages overlap when Teams answers slowly
        # (each POST then costs its round trip only once per `unconfirmed_posts`).
        self._unconfirmed = asyncio.Semaphore(unconfirmed_posts)
        # What each living card last showed: several events of one pass often render the
        # same card, and an update that changes nothing still counts against Teams' limits.
        self._shown: OrderedDict[str, str] = OrderedDict()

    @staticmethod
    def group_of(event: EventRecord) -> str | None:
        if event.kind in GROUPED_KINDS and event.session_id is not None:
            return f"failures:{event.session_id}"
        return None

    def turn_at(self, conversation: TeamsConversation) -> datetime | None:
        """When this conversation's own limits let a request start (`SendGate`)."""
        return self._gate.conversation_slot(conversation.key)

    def throttled(self, conversation: TeamsConversation, retry_after_s: float) -> None:
        """Teams answered with Retry-After: nothing more to this conversation before it."""
        self._gate.throttled(conversation.key, retry_after_s)

    async def deliver(
        self,
        events: Sequence[EventRecord],
        conversation: TeamsConversation,
        decorate: Decorate,
        *,
        mention: Callable[[Card, Sequence[EventRecord]], Card] | None = None,
    ) -> str | None:
        """Send `events` (one, or a group sharing `group_of`) to a Teams conversation.

        Returns the id of the activity that carries them (the reply, or the card).
        """
        lead = events[0]
        run = pipeline_run_of(lead)
        if run is not None:
            # One card per Azure DevOps run: approval asked, decided, deployed, in place.
            return await self._keep_current(
                message_key(RUN_CARD, run, conversation.key),
                kind=RUN_CARD,
                conversation=conversation,
                card=decorate(render_event_card(lead), lead),
                summary=event_summary(lead),
                event_id=lead.id,
            )
        if lead.session_id is None or lead.kind not in SESSION_KINDS:
            return await self._post_once(
                message_key(MESSAGE, lead.key, conversation.key),
                kind=MESSAGE,
                conversation=conversation,
                card=decorate(render_event_card(lead), lead),
                summary=event_summary(lead),
                event_id=lead.id,
            )
        root = await self._session_card(lead.session_id, conversation, lead.id)
        details = [e for e in events if e.kind in DETAIL_KINDS]
        if not details:
            return root
        card = render_group_card(details)
        if len(details) == 1:
            card = decorate(card, details[0])
        elif mention is not None:
            card = mention(card, details)
        return await self._post_once(
            message_key(REPLY, lead.key, conversation.key),
            kind=REPLY,
            conversation=conversation,
            card=card,
            summary=group_summary(details),
            session_id=lead.session_id,
            event_id=lead.id,
            reply_to=root,
        )

    async def _session_card(
        self, session_id: int, conversation: TeamsConversation, event_id: int
    ) -> str | None:
        """Bring the session's card up to date in this conversation; returns its activity id."""
        session = await self._monitoring.session(session_id)
        if session is None:
            raise LookupError(f"session {session_id} is not in the store")
        jobs = await self._monitoring.session_jobs(session_id)
        return await self._keep_current(
            message_key(SESSION_CARD, session_id, conversation.key),
            kind=SESSION_CARD,
            conversation=conversation,
            card=render_session_card(session, jobs, self._clock()),
            summary=session_summary(session, jobs),
            session_id=session_id,
            event_id=event_id,
        )

    async def _keep_current(
        self,
        key: str,
        *,
        kind: str,
        conversation: TeamsConversation,
        card: Card,
        summary: str,
        event_id: int,
        session_id: int | None = None,
    ) -> str | None:
        """Show `card` as the one living message under `key`: update it in place where it
        was posted (unless it already shows exactly this), otherwise post it once."""
        shown = json.dumps(card, sort_keys=True)
        claimed: PostedActivity | None = None
        if key in self._shown:
            # Shown by this process before: the message exists, this is an update.
            existing = await self._posted.get(key)
        else:
            # Most likely a new message: claiming the key is one statement that also
            # reports a message posted earlier (by a previous run), so no read first.
            existing = claimed = await self._posted.begin(
                key,
                destination=conversation.key,
                kind=kind,
                now=self._clock(),
                session_id=session_id,
                event_id=event_id,
            )
        if existing is not None and existing.status == POSTED and existing.activity_id:
            if self._shown.get(key) == shown:
                return existing.activity_id
            try:
                async with self._gate.turn(conversation.key):
                    await self._messenger.update_card(
                        conversation.conversation_id,
                        existing.activity_id,
                        card,
                        client_key=key,
                    )
                self._remember(key, shown)
                return existing.activity_id
            except HttpOperationError as exc:
                if _status(exc) != 404:
                    raise
                # Someone deleted the card: post a fresh one (if the conversation is
                # gone, that post fails for good and the delivery says so).
                log.info("the %s %s was deleted; posting it again", kind, key)
                await self._posted.forget(key)
                claimed = None
        posted = await self._post_once(
            key,
            kind=kind,
            conversation=conversation,
            card=card,
            summary=summary,
            session_id=session_id,
            event_id=event_id,
            claimed=claimed,
        )
        self._remember(key, shown)
        return posted

    def _remember(self, key: str, shown: str) -> None:
        self._shown[key] = shown
        self._shown.move_to_end(key)
        while len(self._shown) > _SHOWN_CARDS:
            self._shown.popitem(last=False)

    async def _post_once(
        self,
        key: str,
        *,
        kind: str,
        conversation: TeamsConversation,
        card: Card,
        summary: str,
        session_id: int | None = None,
        event_id: int | None = None,
        reply_to: str | None = None,
        claimed: PostedActivity | None = None,
    ) -> str | None:
        """Post `card` unless the message under `key` exists; `claimed` is the row a
        `begin` for this attempt already returned."""
        intent = claimed or await self._posted.begin(
            key,
            destination=conversation.key,
            kind=kind,
            now=self._clock(),
            session_id=session_id,
            event_id=event_id,
        )
        if intent.status == POSTED:
            return intent.activity_id  # it reached Teams before: never post it twice
        if intent.uncertain_posts:
            log.warning(
                "posting %s to %s again: an earlier attempt ended without an answer, "
                "so it may show twice",
                kind,
                conversation.key,
            )
        # Few messages (one by default) between their POST and the commit of their id,
        # however many conversations are being served at once: a crash can leave no
        # more than that whose fate is unknown.
        try:
            message = await self._messenger.prepare_card(
                conversation.conversation_id,
                card,
                summary,
                client_key=key,
                reply_to=reply_to,
            )
        except UnknownConversationError:
            await self._posted.forget(key)  # nothing was sent
            raise
        async with self._unconfirmed:
            try:
                async with self._gate.turn(conversation.key):
                    activity_id = await self._messenger.post(message)
            except HttpOperationError as exc:
                if _status(exc) in _REFUSED:
                    await self._posted.forget(key)  # refused: certainly not created
                raise
            await self._posted.posted(key, activity_id, self._clock())
        return activity_id
