"""The migrations and the tables the store declares describe one schema."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine

from app.store.database import create_db_engine, upgrade_database
from app.store.tables import metadata

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
