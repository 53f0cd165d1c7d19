"""Status order: rank and "superseded" columns so `status` reads its page from an index.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# Running first, then waiting, unknown, failed, canceled, completed (as `status` shows).
_RANKS = {"running": 0, "waiting": 1, "unknown": 2, "failed": 3, "canceled": 4, "completed": 5}


def upgrade() -> None:
    with op.batch_alter_table("watched_jobs") as batch:
        batch.add_column(sa.Column("state_rank", sa.Integer, nullable=False, server_default="2"))
        batch.add_column(
            sa.Column("superseded", sa.Boolean, nullable=False, server_default=sa.false())
        )
    jobs = sa.table(
        "watched_jobs",
        sa.column("state", sa.String),
        sa.column("state_rank", sa.Integer),
        sa.column("superseded", sa.Boolean),
        sa.column("workspace", sa.String),
        sa.column("circuit", sa.String),
        sa.column("attempt", sa.Integer),
    )
    for state, rank in _RANKS.items():
        op.execute(jobs.update().where(jobs.c.state == state).values(state_rank=rank))
    newer = jobs.alias("newer")
    op.execute(
        jobs.update()
        .where(
            sa.exists().where(
                newer.c.workspace == jobs.c.workspace,
                newer.c.circuit == jobs.c.circuit,
                newer.c.attempt > jobs.c.attempt,
            )
        )
        .values(superseded=True)
    )
    op.create_index(
        "ix_watched_jobs_status_order",
        "watched_jobs",
        ["superseded", "state_rank", "circuit", "name"],
    )
    op.create_index("ix_watched_jobs_state", "watched_jobs", ["state"])
    op.create_index(
        "ix_watched_jobs_latest_attempt", "watched_jobs", ["workspace", "circuit", "attempt"]
    )


def downgrade() -> None:
    op.drop_index("ix_watched_jobs_latest_attempt", table_name="watched_jobs")
    op.drop_index("ix_watched_jobs_state", table_name="watched_jobs")
    op.drop_index("ix_watched_jobs_status_order", table_name="watched_jobs")
    with op.batch_alter_table("watched_jobs") as batch:
        batch.drop_column("superseded")
        batch.drop_column("state_rank")
