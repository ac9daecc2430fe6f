"""Alembic environment: runs on the connection `app.store.database.upgrade_database` passes in."""

from alembic import context
from sqlalchemy import text

from app.store.tables import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)

with context.begin_transaction():
    if connection.dialect.name == "postgresql":
        # Serialise concurrent upgrades (API and workers may start together).
        connection.execute(text("SELECT pg_advisory_xact_lock(72033615)"))
    context.run_migrations()
