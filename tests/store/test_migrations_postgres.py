"""Migrations and the job store on a real PostgreSQL server the tests start themselves."""

from __future__ import annotations

from collections.abc import Iterator
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from typing import Any

import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect, text

from app.core.exceptions import JobConflict
from app.schemas.jobs import JobCreate, JobStatus
from app.store import JobManager, RunOutcome, RunProgress
from app.store.database import MIGRATIONS_DIR, create_db_engine, upgrade_database
from app.store.tables import metadata
from tests.store.test_migrations import assert_schema_matches_metadata
from tests.utils.postgres import PostgresServer
from tests.utils.processes import run_at_once

LOG_MAX_BYTES = 8192


def _head() -> str:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    return head


def _versions(engine: Engine) -> list[str]:
    with engine.connect() as connection:
        return list(connection.execute(text("SELECT version_num FROM alembic_version")).scalars())


@pytest.fixture
def fresh_url(postgres_server: PostgresServer) -> str:
    """A fresh, empty database's URL."""
    return postgres_server.create_database("core")


@pytest.fixture
def engine(fresh_url: str) -> Iterator[Engine]:
    engine = create_db_engine(fresh_url)
    yield engine
    engine.dispose()


def _upgrade_in_process(
    index: int, barrier: Barrier, results: Queue[tuple[int, Any]], url: str
) -> None:
    engine = create_db_engine(url)
    try:
        barrier.wait(timeout=60)
        upgrade_database(engine)
        results.put((index, "ok"))
    except Exception as exc:
        results.put((index, f"{type(exc).__name__}: {exc}"))
        raise
    finally:
        engine.dispose()


def _claim_in_process(
    index: int, barrier: Barrier, results: Queue[tuple[int, Any]], url: str, job_id: str
) -> None:
    engine = create_db_engine(url)
    try:
        manager = JobManager(engine, log_max_bytes=LOG_MAX_BYTES)
        barrier.wait(timeout=60)
        claim = manager.claim_job(job_id=job_id, worker=f"worker-{index}")
        results.put((index, None if claim is None else claim.attempt))
    finally:
        engine.dispose()


def test_upgrade_to_head_twice_is_idempotent(engine: Engine) -> None:
    upgrade_database(engine)
    first = set(inspect(engine).get_table_names())
    upgrade_database(engine)
    assert _versions(engine) == [_head()]
    assert set(inspect(engine).get_table_names()) == first
    assert set(metadata.tables) <= first


def test_three_processes_upgrade_a_fresh_database_at_once(engine: Engine, fresh_url: str) -> None:
    """The migration environment's advisory lock serialises concurrent upgrades."""
    reports = run_at_once(_upgrade_in_process, 3, fresh_url)
    assert reports == [(0, "ok"), (1, "ok"), (2, "ok")]
    assert _versions(engine) == [_head()]
    assert set(metadata.tables) <= set(inspect(engine).get_table_names())


def test_job_manager_on_postgresql(engine: Engine, fresh_url: str) -> None:
    upgrade_database(engine)
    manager = JobManager(engine, log_max_bytes=LOG_MAX_BYTES)
    job, created = manager.create_job(
        request=JobCreate(pipeline_name="arithmetic", parameters={"initial_value": 7, "u": "é"}),
        user_id="alice",
        dispatched=True,
    )
    assert created and job.status == JobStatus.pending

    # Two worker processes race for the same job: exactly one claims it, on attempt 1.
    claims = run_at_once(_claim_in_process, 2, fresh_url, job.id)
    attempts = [attempt for _, attempt in claims]
    assert sorted(attempts, key=str) == [1, None], claims
    winner = f"worker-{attempts.index(1)}"
    running = manager.get_job(job_id=job.id)
    assert (running.status, running.attempt, running.worker) == (JobStatus.running, 1, winner)
    assert manager.heartbeat(job_id=job.id, attempt=1) is None

    # Output past the cap: the head is kept and the tail rolls.
    lines = b"".join(f"line {n:05d}\n".encode() for n in range(3000))
    for offset in range(0, len(lines), 1000):
        manager.append_output(
            job_id=job.id,
            attempt=1,
            offset=offset,
            data=lines[offset : offset + 1000],
            progress=RunProgress(completed_nodes=["add_five"], total_nodes=3),
        )
    live = manager.read_output(job_id=job.id, offset=0, limit=LOG_MAX_BYTES)
    assert live.offset == 0 and live.data.startswith("line 00000\n") and not live.complete
    assert manager.get_job(job_id=job.id).progress.completed_nodes == 1

    outcome = RunOutcome(
        status=JobStatus.completed,
        exit_code=0,
        execution_time=0.5,
        error_message=None,
        results={"exit_code": 0},
    )
    assert manager.finish_job(job_id=job.id, attempt=1, outcome=outcome)
    assert not manager.finish_job(job_id=job.id, attempt=1, outcome=outcome)  # terminal stays

    done = manager.get_job(job_id=job.id)
    assert done.status == JobStatus.completed and done.exit_code == 0
    assert done.output_bytes == len(lines)
    assert done.output_dropped_bytes == len(lines) - LOG_MAX_BYTES
    head = manager.read_output(job_id=job.id, offset=0, limit=len(lines))
    assert head.data.encode() == lines[: LOG_MAX_BYTES // 2]
    tail = manager.read_output(job_id=job.id, offset=head.next_offset, limit=len(lines))
    assert tail.offset == len(lines) - LOG_MAX_BYTES // 2
    assert tail.data.encode() == lines[-(LOG_MAX_BYTES // 2) :] and tail.complete
    assert [event.status for event in manager.list_events(job_id=job.id)] == [
        JobStatus.pending,
        JobStatus.running,
        JobStatus.completed,
    ]
    assert done.parameters == {"initial_value": 7, "u": "é"}
    assert done.created_at.tzinfo is not None and done.created_at <= done.completed_at  # type: ignore[operator]


def test_idempotency_key_on_postgresql(engine: Engine) -> None:
    upgrade_database(engine)
    manager = JobManager(engine, log_max_bytes=LOG_MAX_BYTES)
    request = JobCreate(pipeline_name="arithmetic", parameters={"initial_value": 7})
    job, created = manager.create_job(
        request=request, user_id="alice", idempotency_key="key-1", dispatched=True
    )
    repeat, created_again = manager.create_job(
        request=request, user_id="alice", idempotency_key="key-1", dispatched=True
    )
    assert created and not created_again and repeat.id == job.id
    # The unique scope is per user, and a key reused with another body is a conflict.
    other, created_for_bob = manager.create_job(
        request=request, user_id="bob", idempotency_key="key-1", dispatched=True
    )
    assert created_for_bob and other.id != job.id
    with pytest.raises(JobConflict):
        manager.create_job(
            request=JobCreate(pipeline_name="arithmetic", parameters={"initial_value": 8}),
            user_id="alice",
            idempotency_key="key-1",
            dispatched=True,
        )


def test_the_migrated_schema_matches_the_tables_the_store_declares(engine: Engine) -> None:
    assert_schema_matches_metadata(engine)
