"""Retention: indexes for the prune pass and for the reads that must not grow with history.

Revision ID: 0009
Revises: 0008
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

# (index, table, columns): see the comments beside each in store/tables.py.
_INDEXES = (
    ("ix_watched_jobs_name", "watched_jobs", ["name"]),
    ("ix_watched_jobs_updated_at", "watched_jobs", ["updated_at"]),
    ("ix_monitoring_sessions_status_updated", "monitoring_sessions", ["status", "updated_at"]),
    ("ix_events_session_kind", "events", ["session_id", "kind"]),
    ("ix_events_undelivered", "events", ["delivered_at", "id"]),
    ("ix_card_actions_created_at", "card_actions", ["created_at"]),
    ("ix_posted_activities_updated_at", "posted_activities", ["updated_at"]),
    ("ix_pipeline_intents_event", "pipeline_intents", ["event_id"]),
    ("ix_deployment_watches_status_updated", "deployment_watches", ["status", "updated_at"]),
)


def upgrade() -> None:
    for name, table, columns in _INDEXES:
        op.create_index(name, table, columns)


def downgrade() -> None:
    for name, table, _ in reversed(_INDEXES):
        op.drop_index(name, table_name=table)
