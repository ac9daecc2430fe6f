"""The migrations and the tables the store declares describe one schema."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import Engine, select, text

from app.store.database import MIGRATIONS_DIR, create_db_engine, upgrade_database
from app.store.outbox import receiver_key
from app.store.tables import metadata
from app.store.webhook_tables import webhook_deliveries, webhook_holds

# Autogenerate cannot compare an index on an expression (`priority DESC`): it always
# reports this one as removed and added again.
EXPRESSION_INDEXES = {"ix_jobs_waiting"}


def _index_name(diff: Any) -> str | None:
    kind = diff[0] if isinstance(diff, tuple) else None
    return diff[1].name if kind in {"add_index", "remove_index"} else None


def assert_schema_matches_metadata(engine: Engine) -> None:
    """Upgrade `engine`'s database to head, then compare it with `metadata`."""
    upgrade_database(engine)
    with engine.connect() as connection:
        diffs = compare_metadata(MigrationContext.configure(connection), metadata)
    assert [diff for diff in diffs if _index_name(diff) not in EXPRESSION_INDEXES] == []


def test_the_migrated_schema_matches_the_tables_the_store_declares(tmp_path: Path) -> None:
    engine = create_db_engine(f"sqlite:///{tmp_path / 'jobs.db'}")
    try:
        assert_schema_matches_metadata(engine)
    finally:
        engine.dispose()


def _upgrade_to(engine: Engine, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.connect() as connection:
        config.attributes["connection"] = connection.execution_options(write=True)
        command.upgrade(config, revision)
        connection.commit()


def test_a_receiver_failing_before_0009_is_held_after_it(tmp_path: Path) -> None:
    """Pending deliveries get their receiver's key; a receiver with a failed attempt
    pending gets one hold, until its deliveries' latest next attempt."""
    engine = create_db_engine(f"sqlite:///{tmp_path / 'jobs.db'}")
    try:
        _upgrade_to(engine, "0008")
        rows = [
            ("m1", "https://dead.example.com/in", "pending", 3, "2030-01-01 00:00:10"),
            ("m2", "https://dead.example.com/in", "pending", 0, "2030-01-01 00:00:10"),
            ("m3", "https://dead.example.com/in", "pending", 1, "2030-01-01 00:00:05"),
            ("m4", "https://live.example.com/in", "pending", 0, "2026-01-01 00:00:00"),
            ("m5", "https://done.example.com/in", "delivered", 2, None),
        ]
        with engine.begin() as connection:
            for delivery_id, url, status, attempts, next_attempt_at in rows:
                connection.execute(
                    text(
                        "INSERT INTO webhook_deliveries (id, event_type, url, payload, status,"
                        " attempts, created_at, next_attempt_at) VALUES (:id, 'webhook.test',"
                        " :url, '{}', :status, :attempts, '2026-01-01 00:00:00', :next)"
                    ),
                    {
                        "id": delivery_id,
                        "url": url,
                        "status": status,
                        "attempts": attempts,
                        "next": next_attempt_at,
                    },
                )
        upgrade_database(engine)
        with engine.connect() as connection:
            keys = {
                row.id: row.receiver
                for row in connection.execute(
                    select(webhook_deliveries.c.id, webhook_deliveries.c.receiver)
                )
            }
            holds = connection.execute(select(webhook_holds)).all()
        dead, live = receiver_key(rows[0][1]), receiver_key(rows[3][1])
        assert keys == {"m1": dead, "m2": dead, "m3": dead, "m4": live, "m5": None}
        [hold] = holds
        assert (hold.receiver, hold.url, hold.failures) == (dead, rows[0][1], 3)
        assert hold.held_until.isoformat() == "2030-01-01T00:00:10+00:00"
    finally:
        engine.dispose()
