"""`BulkInsert` stores exactly what SQLAlchemy's own insert stores, on both databases."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, insert, select

from app.store.bulk import BulkInsert
from app.store.database import create_db_engine, upgrade_database
from app.store.tables import job_events, jobs
from tests.utils.postgres import database_url


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    engine = create_db_engine(database_url(request, request.param, tmp_path, "bulk"))
    upgrade_database(engine)
    yield engine
    engine.dispose()


def _job(job_id: str, **changed: Any) -> dict[str, Any]:
    # An aware time not in UTC, JSON of every shape, a boolean: each needs its converter.
    at = datetime(2026, 5, 1, 12, 30, 15, 123456, tzinfo=timezone(timedelta(hours=2)))
    return {
        "id": job_id,
        "pipeline_name": "arithmetic",
        "parameters": {"initial_value": 10, "nested": {"list": [1, 2.5, None]}, "é": "ü"},
        "options": {"tags": ["a"], "from_nodes": None},
        "queue": "default",
        "timeout_seconds": 1.5,
        "status": "pending",
        "user_id": "alice",
        "idempotency_scope": None,
        "request_hash": None,
        "created_at": at,
        "completed_nodes": [],
        "attempt": 0,
        "cancel_requested": False,
        "output_bytes": 0,
        "output_dropped_bytes": 0,
        "dispatched_at": None,
        "dispatch_count": 1,
        "retry": None,
        "rerun_of": None,
        "planned_nodes": ["add_five"],
        "priority": 3,
        "concurrency_key": None,
        "admitted_at": at,
        "admission_lane": "default\x1farithmetic",
        **changed,
    }


def _event(job_id: str) -> dict[str, Any]:
    at = datetime(2026, 5, 1, 10, 30, tzinfo=UTC)
    return {
        "job_id": job_id,
        "at": at,
        "status": "pending",
        "reason": "submitted",
        "attempt": 0,
        "worker": None,
    }


def _stored(engine: Engine, prefix: str) -> list[tuple[Any, ...]]:
    """The rows whose job id starts with `prefix`, as the driver returns them, less the id."""
    with engine.connect() as connection:
        rows = connection.execute(
            select(jobs).where(jobs.c.id.startswith(prefix)).order_by(jobs.c.id)
        ).all()
        events = connection.execute(
            select(job_events.c.job_id, job_events.c.at, job_events.c.reason)
            .where(job_events.c.job_id.startswith(prefix))
            .order_by(job_events.c.job_id)
        ).all()
    return [tuple(row)[1:] for row in rows] + [tuple(event)[1:] for event in events]


def test_a_bulk_insert_stores_what_sqlalchemy_stores(engine: Engine) -> None:
    variants: list[dict[str, Any]] = [{}, {"retry": {"max_attempts": 2}, "cancel_requested": True}]
    with engine.begin() as connection:
        for number, changed in enumerate(variants):
            connection.execute(insert(jobs), [_job(f"orm-{number}", **changed)])
            connection.execute(insert(job_events), [_event(f"orm-{number}")])
    with engine.begin() as connection:
        BulkInsert(jobs).convert(
            engine.dialect,
            [_job(f"bulk-{number}", **changed) for number, changed in enumerate(variants)],
        ).execute(connection)
        BulkInsert(job_events).convert(
            engine.dialect, [_event(f"bulk-{number}") for number in range(len(variants))]
        ).execute(connection)

    assert _stored(engine, "bulk-") == _stored(engine, "orm-")
    assert len(_stored(engine, "bulk-")) == 4
    with engine.connect() as connection:
        created_at = connection.exec_driver_sql(
            "SELECT created_at FROM jobs WHERE id = 'bulk-0'"
        ).scalar_one()
    assert str(created_at).startswith("2026-05-01 10:30:15.123456")  # stored as naive UTC


def test_rows_naming_other_columns_get_a_statement_of_their_own(engine: Engine) -> None:
    bulk = BulkInsert(job_events)
    with engine.begin() as connection:
        connection.execute(insert(jobs), [_job("other-0")])
        bulk.convert(engine.dialect, [_event("other-0")]).execute(connection)
        short = {key: value for key, value in _event("other-0").items() if key != "worker"}
        bulk.convert(engine.dialect, [short | {"reason": "again"}]).execute(connection)
    with engine.connect() as connection:
        reasons = connection.execute(
            select(job_events.c.reason, job_events.c.worker).where(job_events.c.job_id == "other-0")
        ).all()
    assert sorted(reasons) == [("again", None), ("submitted", None)]
