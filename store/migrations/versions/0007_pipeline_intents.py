"""Pipeline intents: each pipeline run mlbot queues, recorded before it is queued.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pipeline_intents",
        sa.Column("key", sa.String(600), nullable=False),
        sa.Column("pipeline", sa.String(256), nullable=False),
        sa.Column("parameters", sa.JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("run_id", sa.Integer, nullable=True),
        sa.Column("run_url", sa.String(2048), nullable=True),
        sa.Column("posts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("posted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("event_id", sa.Integer, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_pipeline_intents"),
    )
    op.create_index("ix_pipeline_intents_status", "pipeline_intents", ["status"])
    op.create_index("ix_pipeline_intents_run", "pipeline_intents", ["pipeline", "run_id"])
    op.create_table(
        "event_cursors",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("last_event_id", sa.Integer, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_event_cursors"),
    )


def downgrade() -> None:
    op.drop_table("event_cursors")
    op.drop_index("ix_pipeline_intents_run", table_name="pipeline_intents")
    op.drop_index("ix_pipeline_intents_status", table_name="pipeline_intents")
    op.drop_table("pipeline_intents")
