"""Deployment health watches for automatic rollback.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deployment_watches",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(512), nullable=False),
        sa.Column("environment", sa.String(64), nullable=False),
        sa.Column("endpoint_resource_id", sa.String(1024), nullable=False),
        sa.Column("deployment", sa.String(256), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("state", sa.JSON, nullable=False),
        sa.Column("next_check_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("rollback_run_id", sa.Integer, nullable=True),
        sa.Column("cooldown_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("key", name="uq_deployment_watches_key"),
    )
    op.create_index("ix_deployment_watches_environment", "deployment_watches", ["environment"])
    op.create_index("ix_deployment_watches_next_check_at", "deployment_watches", ["next_check_at"])


def downgrade() -> None:
    op.drop_index("ix_deployment_watches_next_check_at", table_name="deployment_watches")
    op.drop_index("ix_deployment_watches_environment", table_name="deployment_watches")
    op.drop_table("deployment_watches")
