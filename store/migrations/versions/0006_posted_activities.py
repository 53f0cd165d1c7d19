"""Posted activities: which Teams message holds each living card, reply and notification.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "posted_activities",
        sa.Column("key", sa.String(80), nullable=False),
        sa.Column("destination", sa.String(600), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("session_id", sa.Integer, nullable=True),
        sa.Column("event_id", sa.Integer, nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("activity_id", sa.String(256), nullable=True),
        sa.Column("uncertain_posts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_posted_activities"),
    )
    op.create_index(
        "ix_posted_activities_session", "posted_activities", ["session_id", "destination"]
    )


def downgrade() -> None:
    op.drop_index("ix_posted_activities_session", table_name="posted_activities")
    op.drop_table("posted_activities")
