"""A burst of delivery work shared by the tests that kill or multiply delivery workers.

200 events for 10 conversations (5 team channels, 5 personal chats): per conversation
one session with 5 circuits (started, completed or failed, still running) and 5
deployments, interleaved as a burst arrives. `check_outcome` says whether every one of
them reached Teams exactly once (see test_delivery_crash.py for what that means).
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

from domain.destinations import TeamsConversation
from domain.jobs import JobState, TrainingJob
from store.conversations import ConversationStore
from store.database import Database
from store.deliveries import DeliveryStore
from store.monitoring import JobProgress, MonitoringStore, NewEvent, Observation
from store.posted_activities import PostedActivityStore
from tests.integration.delivery_worker import SIM_EPOCH, remember_conversation
from tests.standins.connector import ConnectorStandIn

CONVERSATIONS = 10
EVENTS = 200
CIRCUITS = 5


def conversation_id(k: int) -> str:
    return f"19:channel-{k}@thread.tacv2" if k % 2 == 0 else f"a:personal-{k}"


async def seed(db: Database, service_url: str) -> None:
    conversations = ConversationStore(db)
    for k in range(CONVERSATIONS):
        kind = "channel" if k % 2 == 0 else "personal"
        await remember_conversation(conversations, conversation_id(k), kind, service_url)
    store = MonitoringStore(db)
    sessions = {}
    for k in range(CONVERSATIONS):
        session = await store.open_session(
            kind="experiment", key=f"experiment:ws:exp-{k}", title=f"exp-{k}", now=SIM_EPOCH
        )
        sessions[k] = session.id
        jobs = [
            JobProgress(
                job=TrainingJob(
                    workspace="ws",
                    name=f"job-{k}-{c}",
                    display_name=f"train PLANT{k:03d}/CIRCUIT{c:02d}",
                    experiment=f"exp-{k}",
                    circuit=f"PLANT{k:03d}/CIRCUIT{c:02d}",
                    status=("Completed", "Failed")[c % 2],
                    state=(JobState.COMPLETED, JobState.FAILED)[c % 2],
                    started_at=SIM_EPOCH,
                    ended_at=SIM_EPOCH + timedelta(minutes=10),
                ),
                session_id=session.id,
                running_since=SIM_EPOCH,
                announced_start=True,
                timed_out=False,
                reminders_sent=0,
            )
            for c in range(CIRCUITS)
        ]
        await store.apply(Observation(now=SIM_EPOCH, jobs=jobs))
    # Interleaved, as a burst arrives: event i is for conversation i % 10.
    for i in range(EVENTS):
        k, step = i % CONVERSATIONS, i // CONVERSATIONS
        c = step % CIRCUITS
        circuit = f"PLANT{k:03d}/CIRCUIT{c:02d}"
        phase = step // CIRCUITS
        kind = (
            "training_started",
            ("training_completed", "training_failed")[c % 2],
            "long_running",
            "deployment_completed",
        )[phase]
        payload: dict[str, Any] = {"conversation": conversation_id(k), "circuit": circuit}
        if kind == "training_failed":
            payload["error_summary"] = f"CUDA out of memory ({circuit})"
        if kind == "deployment_completed":
            payload.update({"environment": "dev", "pipeline": f"deploy-{k}", "run_id": step})
        session_id = None if kind == "deployment_completed" else sessions[k]
        await store.apply(
            Observation(
                # Apart in time, so no two failures fall into one group.
                now=SIM_EPOCH + timedelta(milliseconds=i),
                events=[
                    NewEvent(
                        key=f"burst/{i:03d}/{kind}",
                        kind=kind,
                        payload=payload,
                        session_id=session_id,
                        circuit=circuit,
                    )
                ],
            )
        )


def expected_keys_per_conversation() -> int:
    # One session card, a reply per failure and per reminder, a card per deployment.
    failures = sum(1 for c in range(CIRCUITS) if c % 2)
    return 1 + failures + CIRCUITS + CIRCUITS


async def check_outcome(db: Database, connector: ConnectorStandIn, kills: int) -> None:
    events = MonitoringStore(db)
    assert await events.events(undelivered_only=True, limit=1) == []
    deliveries = DeliveryStore(db)
    for event in await events.events(limit=EVENTS):
        records = await deliveries.for_event(event.id)
        teams = [r for d, r in records.items() if isinstance(d, TeamsConversation)]
        assert len(teams) == 1 and {r.status for r in records.values()} == {"sent"}, event.key
    posted = {p.key: p for p in await PostedActivityStore(db).all()}
    uncertain = {key for key, p in posted.items() if p.uncertain_posts}
    repeated: set[str] = set()
    for k in range(CONVERSATIONS):
        messages = connector.conversation_messages(conversation_id(k))
        keys = [m.client_key for m in messages]
        assert None not in keys
        counts = Counter(keys)
        assert len(counts) == expected_keys_per_conversation(), conversation_id(k)
        repeated |= {key for key, n in counts.items() if n > 1 and key is not None}
        # Created in event order (the first copy of each key counts).
        order = [posted[key].event_id or 0 for key in dict.fromkeys(keys) if key is not None]
        assert order == sorted(order), conversation_id(k)
        # The living card (the copy whose id the store kept, should a crash have posted
        # it twice) shows every circuit in its final state.
        session_key = next(key for key in counts if key and key.startswith("session_card:"))
        card = connector.messages[str(posted[session_key].activity_id)]
        shown = str(card.body)
        assert all(f"PLANT{k:03d}/CIRCUIT{c:02d}" in shown for c in range(CIRCUITS))
        assert "❌ Failed" in shown and "✅ Completed" in shown
        # Replies sit in the card's thread in channels; chats have no threads.
        replies = [m for m in messages if (m.client_key or "").startswith("reply:")]
        expected_root = card.activity_id if k % 2 == 0 else None
        assert {m.thread_root for m in replies} == {expected_root}
    assert repeated <= uncertain
    assert len(repeated) <= kills
    assert connector.violations == []
