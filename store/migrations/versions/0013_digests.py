"""Daily digests (which conversations get one, when, the last day sent; an index on when
jobs ended, as a digest reads a day of them) and `notify me` (who asked, and each job's
submitter).

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "digests",
        sa.Column("conversation_id", sa.String(512), primary_key=True),
        sa.Column("at_time", sa.String(5), nullable=False),
        sa.Column("zone", sa.String(64), nullable=False),
        sa.Column("last_sent_on", sa.Date, nullable=True),
        sa.Column("created_by", sa.String(256), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_watched_jobs_ended_at", "watched_jobs", ["ended_at"])
    op.add_column("watched_jobs", sa.Column("created_by", sa.String(256), nullable=True))
    op.create_table(
        "personal_alerts",
        sa.Column("user_id", sa.String(256), primary_key=True),
        sa.Column("conversation_id", sa.String(512), nullable=False),
        sa.Column("upn", sa.String(256), nullable=True),
        sa.Column("name", sa.String(256), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("personal_alerts")
    op.drop_column("watched_jobs", "created_by")
    op.drop_index("ix_watched_jobs_ended_at", table_name="watched_jobs")
    op.drop_table("digests")
