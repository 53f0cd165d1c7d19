"""Silences, acknowledgements and snoozes, and the events they held back.

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "silences",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("kinds", sa.JSON, nullable=False),
        sa.Column("filters", sa.JSON, nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_early_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_by", sa.String(256), nullable=False),
        sa.Column("reason", sa.String(256), nullable=False),
        sa.Column("held", sa.Integer, nullable=False, server_default="0"),
    )
    op.create_index("ix_silences_ends_at", "silences", ["ends_at"])
    op.create_table(
        "job_attention",
        sa.Column("job_key", sa.String(800), primary_key=True),
        sa.Column("acknowledged_by", sa.String(256), nullable=True),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("snoozed_by", sa.String(256), nullable=True),
        sa.Column("snoozed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("snoozed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "held_events",
        sa.Column("event_id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("reason", sa.String(256), nullable=False),
        sa.Column("silence_id", sa.Integer, nullable=True),
        sa.Column("held_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_held_events_silence_id", "held_events", ["silence_id"])
    op.create_index("ix_held_events_held_at", "held_events", ["held_at"])


def downgrade() -> None:
    op.drop_index("ix_held_events_held_at", table_name="held_events")
    op.drop_index("ix_held_events_silence_id", table_name="held_events")
    op.drop_table("held_events")
    op.drop_table("job_attention")
    op.drop_index("ix_silences_ends_at", table_name="silences")
    op.drop_table("silences")
