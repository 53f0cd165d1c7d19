"""Alembic environment: migrations always run on a connection handed in by mlbot."""

from alembic import context

from store.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("mlbot applies migrations itself at start-up (store.database.Database)")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
