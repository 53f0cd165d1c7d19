"""Table definitions: the database is mlbot's single source of truth."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "pk": "pk_%(table_name)s",
    }
)

conversations = Table(
    "conversations",
    metadata,
    Column("conversation_id", String(512), primary_key=True),
    Column("channel_id", String(64), nullable=False),
    Column("service_url", String(1024), nullable=False),
    Column("tenant_id", String(128), nullable=True),
    Column("conversation_type", String(32), nullable=True),  # personal | groupChat | channel
    Column("team_id", String(512), nullable=True),
    Column("title", String(512), nullable=True),
    Column("reference", JSON, nullable=False),  # the serialized ConversationReference
    Column("installed_by", String(256), nullable=True),
    Column("installed_at", DateTime(timezone=True), nullable=False),
)

subscriptions = Table(
    "subscriptions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    # One subscription per conversation (revision 0005).
    Column("conversation_id", String(512), nullable=False, unique=True),
    Column("event_kinds", JSON, nullable=False),  # list of subscription kind names
    # {"experiment": ..., "circuit_prefix": ..., "environment": ...}; absent = any
    Column("filters", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=True),
    Column("updated_by", String(256), nullable=True),
)

watched_jobs = Table(
    "watched_jobs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("workspace", String(512), nullable=False),
    Column("name", String(256), nullable=False),
    Column("display_name", String(512), nullable=False),
    Column("experiment", String(256), nullable=False),
    Column("circuit", String(256), nullable=True, index=True),
    Column("status", String(32), nullable=False),
    Column("state", String(16), nullable=False),
    Column("attempt", Integer, nullable=False, default=1),
    Column("created_at", DateTime(timezone=True), nullable=True),
    Column("started_at", DateTime(timezone=True), nullable=True),
    Column("ended_at", DateTime(timezone=True), nullable=True),
    Column("studio_url", String(2048), nullable=True),
    Column("error_summary", Text, nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    # Who submitted the job, as Azure ML says (revision 0013; `notify me`).
    Column("created_by", String(256), nullable=True),
    # Monitoring (revision 0002): which session watches the job and what was announced.
    Column("session_id", Integer, nullable=True, index=True),
    Column("first_seen_at", DateTime(timezone=True), nullable=True),
    Column("observed_at", DateTime(timezone=True), nullable=True),
    Column("running_since", DateTime(timezone=True), nullable=True),
    Column("announced_start", Boolean, nullable=False, default=False),
    Column("timed_out", Boolean, nullable=False, default=False),
    Column("reminders_sent", Integer, nullable=False, default=0),
    Column("cancel_requested_at", DateTime(timezone=True), nullable=True),
    # Attention order for `status` (running first …); indexed with circuit and name so
    # the first page of a large store is read from the index, not sorted every time.
    Column("state_rank", Integer, nullable=False, default=2),
    # True once a later attempt of the same circuit exists: `status` shows the latest.
    Column("superseded", Boolean, nullable=False, default=False),
    UniqueConstraint("workspace", "name", name="uq_watched_jobs_workspace_name"),
    Index("ix_watched_jobs_status_order", "superseded", "state_rank", "circuit", "name"),
    Index("ix_watched_jobs_state", "state"),
    Index("ix_watched_jobs_latest_attempt", "workspace", "circuit", "attempt"),
    # The daily digest reads one day of finished jobs (revision 0013).
    Index("ix_watched_jobs_ended_at", "ended_at"),
    # Revision 0009: a push names a job, perhaps without its workspace; retention looks
    # for finished jobs by age.
    Index("ix_watched_jobs_name", "name"),
    Index("ix_watched_jobs_updated_at", "updated_at"),
)

monitoring_sessions = Table(
    "monitoring_sessions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    # pipeline_run | discovery | manual; `key` makes "the same session" findable again.
    Column("kind", String(32), nullable=False),
    Column("key", String(512), nullable=False, unique=True),
    Column("title", String(512), nullable=False),
    Column("workspace", String(512), nullable=True),
    Column("pipeline_run_id", Integer, nullable=True),
    Column("status", String(16), nullable=False),  # active | done | timed_out
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("checks_done", Integer, nullable=False, default=0),
    Column("last_check_at", DateTime(timezone=True), nullable=True),
    Column("next_check_at", DateTime(timezone=True), nullable=True, index=True),
    Column("created_by", String(256), nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    # Revision 0008: bumped by every write, so an engine pass planned from an older
    # read is refused instead of undoing an unwatch or a push (compare-and-set).
    Column("version", Integer, nullable=False, default=0, server_default="0"),
    # Revision 0009: watched sessions (pushes, due checks) and old finished ones
    # (retention) are found without reading every session ever created.
    Index("ix_monitoring_sessions_status_updated", "status", "updated_at"),
)

events = Table(
    "events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    # Deterministic per meaningful happening, so a restarted engine never repeats one.
    Column("key", String(512), nullable=False, unique=True),
    Column("kind", String(64), nullable=False),
    Column("session_id", Integer, nullable=True),
    Column("workspace", String(512), nullable=True),
    Column("job_name", String(256), nullable=True),
    Column("circuit", String(256), nullable=True),
    Column("payload", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, index=True),
    Column("delivered_at", DateTime(timezone=True), nullable=True),
    Column("delivery_attempts", Integer, nullable=False, default=0),
    Column("last_error", Text, nullable=True),
    # Revision 0009: a session's retry events (read at each of its checks), the events
    # still to deliver (read at each delivery pass) and retention's look-ups by session.
    Index("ix_events_session_kind", "session_id", "kind"),
    Index("ix_events_undelivered", "delivered_at", "id"),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False, index=True),
    Column("actor_id", String(256), nullable=True),
    Column("actor_name", String(256), nullable=True),
    Column("tenant_id", String(128), nullable=True),
    Column("conversation_id", String(512), nullable=True),
    Column("action", String(64), nullable=False),
    Column("target", String(512), nullable=True),
    Column("outcome", String(32), nullable=False),  # ok | refused | failed
    Column("detail", Text, nullable=True),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("event_id", Integer, nullable=False, index=True),
    # `domain.destinations` keys: "teams:<conversation id>", "webhook", "email"
    Column("destination", String(600), nullable=False),
    Column("status", String(16), nullable=False),  # pending | sent | failed
    Column("attempts", Integer, nullable=False, default=0),
    Column("activity_id", String(256), nullable=True),
    Column("last_error", Text, nullable=True),
    Column("next_attempt_at", DateTime(timezone=True), nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    # The delivery pass sending this row (revision 0010): owner and until when. Another
    # pass leaves a live claim alone and takes over an expired one (its owner died).
    Column("claimed_by", String(128), nullable=True),
    Column("claim_expires_at", DateTime(timezone=True), nullable=True),
    UniqueConstraint("event_id", "destination", name="uq_deliveries_event_destination"),
    Index("ix_deliveries_claimed_by", "claimed_by"),
)

card_actions = Table(
    "card_actions",
    metadata,
    # One row per signed card action (its nonce): a double click or a Teams retry of the
    # same action finds the row and gets the first answer again instead of acting twice.
    Column("nonce", String(64), primary_key=True),
    Column("verb", String(64), nullable=False),
    Column("actor_id", String(256), nullable=True),
    Column("status", String(16), nullable=False),  # claimed | done
    Column("outcome", String(32), nullable=True),
    Column("result", JSON, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ix_card_actions_created_at", "created_at"),  # revision 0009: retention
)

posted_activities = Table(
    "posted_activities",
    metadata,
    # One row per message the bot creates in Teams, keyed by a key mlbot chooses
    # (revision 0006). The row is written *before* the POST ("posting") and completed
    # with the activity id Teams assigned ("posted"): a resend after a crash finds the
    # id and updates that activity instead of posting a second message.
    Column("key", String(80), primary_key=True),
    Column("destination", String(600), nullable=False),
    Column("kind", String(16), nullable=False),  # session_card | run_card | reply | message
    Column("session_id", Integer, nullable=True),
    Column("event_id", Integer, nullable=True),  # the first event it announced
    Column("status", String(16), nullable=False),  # posting | posted
    Column("activity_id", String(256), nullable=True),
    # Times a post was started without knowing whether an earlier one arrived.
    Column("uncertain_posts", Integer, nullable=False, default=0),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ix_posted_activities_session", "session_id", "destination"),
    Index("ix_posted_activities_updated_at", "updated_at"),  # revision 0009: retention
)

pipeline_intents = Table(
    "pipeline_intents",
    metadata,
    # One row per pipeline run mlbot means to queue, keyed by what asked for it (a card
    # action's nonce, a retry event, a deployment watch; revision 0007). Written before
    # the POST, so an answer that never came is looked for (`find_run`) instead of being
    # queued a second time.
    Column("key", String(600), primary_key=True),
    Column("pipeline", String(256), nullable=False),
    Column("parameters", JSON, nullable=False),  # the run's templateParameters
    # pending | posting | unknown | queued | failed (monitoring/pipeline_runs.py)
    Column("status", String(16), nullable=False),
    Column("run_id", Integer, nullable=True),
    Column("run_url", String(2048), nullable=True),
    Column("posts", Integer, nullable=False, default=0),  # POSTs sent for this intent
    Column("posted_at", DateTime(timezone=True), nullable=True),  # when the last one left
    Column("error", Text, nullable=True),
    # The retry event the intent stands for, when it stands for one.
    Column("event_id", Integer, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ix_pipeline_intents_status", "status"),
    Index("ix_pipeline_intents_run", "pipeline", "run_id"),
    # Revision 0009: retention keeps an event while an unresolved intent stands for it.
    Index("ix_pipeline_intents_event", "event_id"),
)

event_cursors = Table(
    "event_cursors",
    metadata,
    # How far a reader of the events table got (revision 0007): the engine turns each
    # new retry event into a pipeline intent without reading older events again.
    Column("name", String(64), primary_key=True),
    Column("last_event_id", Integer, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

silences = Table(
    "silences",
    metadata,
    # Alertmanager-style silences (revision 0012): matched events are held, not posted.
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kinds", JSON, nullable=False),  # subscription kinds; [] = every kind
    Column("filters", JSON, nullable=False),  # SubscriptionFilters.to_json()
    Column("starts_at", DateTime(timezone=True), nullable=False),
    Column("ends_at", DateTime(timezone=True), nullable=False, index=True),
    Column("ended_early_at", DateTime(timezone=True), nullable=True),
    Column("created_by", String(256), nullable=False),
    Column("reason", String(256), nullable=False),
    Column("held", Integer, nullable=False, default=0),
)

job_attention = Table(
    "job_attention",
    metadata,
    # Who acknowledged a job and who snoozed its reminders (revision 0012), one row each.
    Column("job_key", String(800), primary_key=True),
    Column("acknowledged_by", String(256), nullable=True),
    Column("acknowledged_at", DateTime(timezone=True), nullable=True),
    Column("snoozed_by", String(256), nullable=True),
    Column("snoozed_at", DateTime(timezone=True), nullable=True),
    Column("snoozed_until", DateTime(timezone=True), nullable=True),  # NULL + snoozed_at: to end
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

held_events = Table(
    "held_events",
    metadata,
    # Events a silence, a snooze or an acknowledgement held back (revision 0012).
    Column("event_id", Integer, primary_key=True, autoincrement=False),
    Column("reason", String(256), nullable=False),
    Column("silence_id", Integer, nullable=True, index=True),
    Column("held_at", DateTime(timezone=True), nullable=False, index=True),
)

personal_alerts = Table(
    "personal_alerts",
    metadata,
    # People who asked, in their personal chat, for failures of their own jobs and of the
    # circuits they own (revision 0013; `notify me`).
    Column("user_id", String(256), primary_key=True),  # Entra object id
    Column("conversation_id", String(512), nullable=False),
    Column("upn", String(256), nullable=True),
    Column("name", String(256), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

digests = Table(
    "digests",
    metadata,
    # The daily digest a conversation asked for (revision 0013): when, and the last day sent.
    Column("conversation_id", String(512), primary_key=True),
    Column("at_time", String(5), nullable=False),  # HH:MM, local
    Column("zone", String(64), nullable=False),  # IANA time zone
    Column("last_sent_on", Date, nullable=True),  # the local date of the last digest
    Column("created_by", String(256), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

leader_lease = Table(
    "leader_lease",
    metadata,
    # Which replica runs the engine (revision 0011; used on PostgreSQL only). `epoch`
    # grows with each new holder and fences its writes; `expires_at` is the database's
    # own clock plus the lease duration.
    Column("name", String(64), primary_key=True),
    Column("owner", String(256), nullable=False, default=""),
    Column("epoch", BigInteger, nullable=False, default=0),
    Column("acquired_at", DateTime(timezone=True), nullable=True),
    Column("renewed_at", DateTime(timezone=True), nullable=True),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)
