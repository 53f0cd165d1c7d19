"""Monitoring sessions, events and their deliveries, per-job state, card actions.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("watched_jobs") as batch:
        batch.add_column(sa.Column("session_id", sa.Integer, nullable=True))
        batch.add_column(sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("observed_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("running_since", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(
            sa.Column("announced_start", sa.Boolean, nullable=False, server_default=sa.false())
        )
        batch.add_column(
            sa.Column("timed_out", sa.Boolean, nullable=False, server_default=sa.false())
        )
        batch.add_column(
            sa.Column("reminders_sent", sa.Integer, nullable=False, server_default="0")
        )
        batch.add_column(
            sa.Column("cancel_requested_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch.create_index("ix_watched_jobs_session_id", ["session_id"])
    op.create_table(
        "monitoring_sessions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("key", sa.String(512), nullable=False),
        sa.Column("title", sa.String(512), nullable=False),
        sa.Column("workspace", sa.String(512), nullable=True),
        sa.Column("pipeline_run_id", sa.Integer, nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("checks_done", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_check_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("next_check_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_by", sa.String(256), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("key", name="uq_monitoring_sessions_key"),
    )
    op.create_index(
        "ix_monitoring_sessions_next_check_at", "monitoring_sessions", ["next_check_at"]
    )
    op.create_table(
        "events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(512), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("session_id", sa.Integer, nullable=True),
        sa.Column("workspace", sa.String(512), nullable=True),
        sa.Column("job_name", sa.String(256), nullable=True),
        sa.Column("circuit", sa.String(256), nullable=True),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("delivery_attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.UniqueConstraint("key", name="uq_events_key"),
    )
    op.create_index("ix_events_created_at", "events", ["created_at"])
    op.create_table(
        "deliveries",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.Integer, nullable=False),
        sa.Column("destination", sa.String(600), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("activity_id", sa.String(256), nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("event_id", "destination", name="uq_deliveries_event_destination"),
    )
    op.create_index("ix_deliveries_event_id", "deliveries", ["event_id"])
    op.create_table(
        "card_actions",
        sa.Column("nonce", sa.String(64), primary_key=True),
        sa.Column("verb", sa.String(64), nullable=False),
        sa.Column("actor_id", sa.String(256), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("outcome", sa.String(32), nullable=True),
        sa.Column("result", sa.JSON, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("card_actions")
    op.drop_table("deliveries")
    op.drop_table("events")
    op.drop_table("monitoring_sessions")
    with op.batch_alter_table("watched_jobs") as batch:
        batch.drop_index("ix_watched_jobs_session_id")
        for column in (
            "cancel_requested_at",
            "reminders_sent",
            "timed_out",
            "announced_start",
            "running_since",
            "observed_at",
            "first_seen_at",
            "session_id",
        ):
            batch.drop_column(column)
