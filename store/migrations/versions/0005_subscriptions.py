"""Subscriptions: one per conversation, with who changed it last and when.

Revision ID: 0005
Revises: 0004

Earlier revisions allowed several subscription rows per conversation (never used: one
was written at install). Rows of one conversation are merged — kinds united, the first
row's filters kept — before the conversation id becomes unique, so `subscribe` edits
one row and notification routing reads one row per conversation.
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    subscriptions = sa.table(
        "subscriptions",
        sa.column("id", sa.Integer),
        sa.column("conversation_id", sa.String),
        sa.column("event_kinds", sa.JSON),
        sa.column("filters", sa.JSON),
    )
    bind = op.get_bind()
    rows = bind.execute(
        sa.select(
            subscriptions.c.id,
            subscriptions.c.conversation_id,
            subscriptions.c.event_kinds,
            subscriptions.c.filters,
        ).order_by(subscriptions.c.id)
    ).all()
    kept: dict[str, tuple[int, list[str]]] = {}
    extra: list[int] = []
    for row in rows:
        kinds = [k for k in (row.event_kinds or []) if isinstance(k, str)]
        if row.conversation_id not in kept:
            kept[row.conversation_id] = (row.id, kinds)
            continue
        first_id, merged = kept[row.conversation_id]
        merged.extend(k for k in kinds if k not in merged)
        extra.append(row.id)
    if extra:
        for first_id, merged in kept.values():
            bind.execute(
                subscriptions.update()
                .where(subscriptions.c.id == first_id)
                .values(event_kinds=merged)
            )
        bind.execute(subscriptions.delete().where(subscriptions.c.id.in_(extra)))

    op.drop_index("ix_subscriptions_conversation_id", table_name="subscriptions")
    with op.batch_alter_table("subscriptions") as batch:
        batch.add_column(sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("updated_by", sa.String(256), nullable=True))
        batch.create_unique_constraint("uq_subscriptions_conversation_id", ["conversation_id"])


def downgrade() -> None:
    with op.batch_alter_table("subscriptions") as batch:
        batch.drop_constraint("uq_subscriptions_conversation_id", type_="unique")
        batch.drop_column("updated_by")
        batch.drop_column("updated_at")
    op.create_index("ix_subscriptions_conversation_id", "subscriptions", ["conversation_id"])
