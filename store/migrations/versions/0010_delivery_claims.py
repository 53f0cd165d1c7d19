"""Delivery claims: the pass sending a delivery row holds it, with an expiry.

Two dispatchers (replicas, or a leader change in the middle of a pass) then never send
one row twice, and an expired claim of a process that died is taken over.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("claimed_by", sa.String(128), nullable=True))
        batch.add_column(sa.Column("claim_expires_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_index("ix_deliveries_claimed_by", ["claimed_by"])


def downgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_index("ix_deliveries_claimed_by")
        batch.drop_column("claim_expires_at")
        batch.drop_column("claimed_by")
