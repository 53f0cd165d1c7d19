"""Initial schema: conversations, subscriptions, watched jobs, audit trail.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "conversations",
        sa.Column("conversation_id", sa.String(512), primary_key=True),
        sa.Column("channel_id", sa.String(64), nullable=False),
        sa.Column("service_url", sa.String(1024), nullable=False),
        sa.Column("tenant_id", sa.String(128), nullable=True),
        sa.Column("conversation_type", sa.String(32), nullable=True),
        sa.Column("team_id", sa.String(512), nullable=True),
        sa.Column("title", sa.String(512), nullable=True),
        sa.Column("reference", sa.JSON, nullable=False),
        sa.Column("installed_by", sa.String(256), nullable=True),
        sa.Column("installed_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "subscriptions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("conversation_id", sa.String(512), nullable=False),
        sa.Column("event_kinds", sa.JSON, nullable=False),
        sa.Column("filters", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_subscriptions_conversation_id", "subscriptions", ["conversation_id"])
    op.create_table(
        "watched_jobs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("workspace", sa.String(512), nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("display_name", sa.String(512), nullable=False),
        sa.Column("experiment", sa.String(256), nullable=False),
        sa.Column("circuit", sa.String(256), nullable=True),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("studio_url", sa.String(2048), nullable=True),
        sa.Column("error_summary", sa.Text, nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("workspace", "name", name="uq_watched_jobs_workspace_name"),
    )
    op.create_index("ix_watched_jobs_circuit", "watched_jobs", ["circuit"])
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor_id", sa.String(256), nullable=True),
        sa.Column("actor_name", sa.String(256), nullable=True),
        sa.Column("tenant_id", sa.String(128), nullable=True),
        sa.Column("conversation_id", sa.String(512), nullable=True),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.String(512), nullable=True),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("detail", sa.Text, nullable=True),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])


def downgrade() -> None:
    op.drop_table("audit_log")
    op.drop_table("watched_jobs")
    op.drop_table("subscriptions")
    op.drop_table("conversations")
