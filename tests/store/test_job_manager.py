"""The job store on a real SQLite file: transitions, races, idempotency, output, reaping."""

from __future__ import annotations

import base64
import itertools
import json
import logging
import random
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from typing import Any

import pytest
from sqlalchemy import Engine, func, select, update

from app.core.config import Settings
from app.core.exceptions import InvalidCursor, JobConflict, JobNotFound
from app.core.logs import JsonFormatter
from app.schemas.jobs import JobCreate, JobStatus, LogChunk
from app.services import build_core
from app.store import (
    JobManager,
    NewJob,
    OutputBatch,
    RunProgress,
    utcnow,
)
from app.store.cursors import decode_cursor
from app.store.database import create_db_engine
from app.store.tables import job_output, jobs
from tests.utils.factories import WORKER, outcome, running, submit, write
from tests.utils.processes import run_at_once

MULTIBYTE_UNIT = "café ✓ 🎉\n"


@pytest.fixture
def db(settings: Settings, manager: JobManager) -> Iterator[Engine]:
    """A second engine on the test's database, for looking under the manager."""
    engine = create_db_engine(settings.database_url)
    yield engine
    engine.dispose()


def read_all(manager: JobManager, job_id: str, *, limit: int, offset: int = 0) -> list[LogChunk]:
    """Page through a terminal job's output until `complete`, insisting on progress."""
    chunks = []
    for _ in range(1_000_000):
        chunk = manager.read_output(job_id=job_id, offset=offset, limit=limit)
        chunks.append(chunk)
        if chunk.complete:
            return chunks
        assert chunk.next_offset > offset, f"no progress reading from {offset}: {chunk!r}"
        assert len(chunk.data.encode()) <= max(limit, 4)  # at least one whole character
        offset = chunk.next_offset
    raise AssertionError("output never completed")


def stored_bytes(db: Engine, job_id: str) -> int:
    with db.connect() as connection:
        total = connection.execute(
            select(func.coalesce(func.sum(job_output.c.size), 0)).where(
                job_output.c.job_id == job_id
            )
        ).scalar_one()
    return int(total)


def encode_cursor(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


# --- create, get, list ------------------------------------------------------------


def test_create_and_get(manager: JobManager) -> None:
    """A new job is pending, echoes its request and has one `submitted` event."""
    request = JobCreate(
        pipeline_name="arithmetic",
        parameters={"initial_value": 10, "nested": {"a": [1, "b"]}},
        env="prod",
        tags=["t1"],
        runner="ThreadRunner",
        timeout_seconds=600,
        load_versions={"cars": "2024-01-01T00.00.00.000Z"},
    )
    job, created = manager.create_job(request=request, user_id="alice", dispatched=False)
    assert created
    assert uuid.UUID(job.id)
    fetched = manager.get_job(job_id=job.id)
    assert fetched == job
    assert fetched.status == JobStatus.pending
    assert fetched.pipeline_name == "arithmetic"
    assert fetched.parameters == {"initial_value": 10, "nested": {"a": [1, "b"]}}
    assert (fetched.env, fetched.tags, fetched.runner) == ("prod", ["t1"], "ThreadRunner")
    assert fetched.load_versions == {"cars": "2024-01-01T00.00.00.000Z"}
    assert (fetched.queue, fetched.timeout_seconds, fetched.user_id) == ("default", 600, "alice")
    assert fetched.created_at.utcoffset() == timedelta(0)
    assert fetched.started_at is None
    assert fetched.completed_at is None
    assert fetched.worker is None
    assert fetched.attempt == 0
    assert (fetched.output_bytes, fetched.output_dropped_bytes) == (0, 0)
    [event] = manager.list_events(job_id=job.id)
    assert (event.status, event.reason, event.attempt, event.worker) == (
        JobStatus.pending,
        "submitted",
        0,
        None,
    )


def test_a_group_is_logged_in_one_line_naming_each_job(
    manager: JobManager, caplog: pytest.LogCaptureFixture
) -> None:
    """A group of submits logs one line; its JSON form lists every job's id."""
    request = JobCreate(pipeline_name="arithmetic")
    caplog.set_level(logging.INFO, logger="app.store.jobs")
    jobs_made = manager.create_jobs([NewJob(request=request, user_id=None, dispatched=False)] * 3)
    assert jobs_made is not None
    [record] = [r for r in caplog.records if r.name == "app.store.jobs"]
    entry = json.loads(JsonFormatter().format(record))
    assert entry["job_ids"] == [job.id for job in jobs_made]
    assert all(job.id in entry["message"] for job in jobs_made)


def test_get_unknown_job_raises(manager: JobManager) -> None:
    """Unknown ids are JobNotFound everywhere a job is looked up."""
    unknown = str(uuid.uuid4())
    with pytest.raises(JobNotFound):
        manager.get_job(job_id=unknown)
    with pytest.raises(JobNotFound):
        manager.list_events(job_id=unknown)
    with pytest.raises(JobNotFound):
        manager.read_output(job_id=unknown, offset=0, limit=10)
    with pytest.raises(JobNotFound):
        manager.request_cancel(job_id=unknown, reason="x")


def test_list_newest_first_with_filters(manager: JobManager) -> None:
    """Newest first; `status` and `pipeline_name` filter, alone and together."""
    created = [submit(manager, name) for name in ["a", "b", "a", "c", "a", "b"]]
    claim = manager.claim_job(job_id=created[2].id, worker=WORKER)
    assert claim is not None

    items, next_cursor = manager.list_jobs()
    assert [job.id for job in items] == [job.id for job in reversed(created)]
    assert next_cursor is None

    only_a, _ = manager.list_jobs(pipeline_name="a")
    assert [job.id for job in only_a] == [created[4].id, created[2].id, created[0].id]
    running_jobs, _ = manager.list_jobs(status=JobStatus.running)
    assert [job.id for job in running_jobs] == [created[2].id]
    pending_a, _ = manager.list_jobs(status=JobStatus.pending, pipeline_name="a")
    assert [job.id for job in pending_a] == [created[4].id, created[0].id]
    assert manager.list_jobs(status=JobStatus.failed) == ([], None)
    assert manager.list_jobs(pipeline_name="nope") == ([], None)


@pytest.mark.parametrize(("count", "limit"), [(23, 5), (20, 5), (5, 5), (1, 100), (7, 1)])
def test_cursor_pages_cover_every_job_once(manager: JobManager, count: int, limit: int) -> None:
    """Following next_cursor visits every job exactly once, newest first, then stops."""
    created = [submit(manager, f"p{i % 3}").id for i in range(count)]
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        items, cursor = manager.list_jobs(limit=limit, cursor=cursor)
        pages += 1
        assert len(items) <= limit
        seen.extend(job.id for job in items)
        if cursor is None:
            break
        assert len(items) == limit
    assert seen == list(reversed(created))
    assert pages == max(1, -(-count // limit))


def test_cursor_pages_with_filter_and_equal_timestamps(manager: JobManager, db: Engine) -> None:
    """Jobs created in the same microsecond are still paged exactly once (id breaks ties)."""
    created = [submit(manager, "same" if i % 2 else "other").id for i in range(30)]
    with db.begin() as connection:
        connection.execute(update(jobs).values(created_at=datetime(2026, 1, 1, 12, 0)))
    for pipeline_name, expected in [(None, created), ("same", created[1::2])]:
        seen: list[str] = []
        cursor: str | None = None
        while True:
            items, cursor = manager.list_jobs(limit=4, cursor=cursor, pipeline_name=pipeline_name)
            seen.extend(job.id for job in items)
            if cursor is None:
                break
        assert Counter(seen) == Counter(expected)
        assert seen == sorted(expected, reverse=True)


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "!!!",
        "not-a-cursor",
        base64.urlsafe_b64encode(b"\xff\xfe\x00").decode(),
        encode_cursor([]),
        encode_cursor(["2026-01-01T00:00:00+00:00"]),
        encode_cursor(["2026-01-01T00:00:00+00:00", "not-a-uuid"]),
        encode_cursor(["yesterday", "0b6b1d52-5d6a-4a52-9b8e-4c1f3c2b7a10"]),
        encode_cursor(
            ["2026-01-01T00:00:00+00:00", "0b6b1d52-5d6a-4a52-9b8e-4c1f3c2b7a10", "extra"]
        ),
        encode_cursor([None, None]),
        encode_cursor({"a": 1}),
        encode_cursor(42),
    ],
)
def test_invalid_cursor_raises_invalid_cursor(manager: JobManager, cursor: str) -> None:
    """Anything that is not a handed-out cursor is `InvalidCursor`, from decode and from list."""
    with pytest.raises(InvalidCursor, match="invalid cursor"):
        decode_cursor(cursor)
    with pytest.raises(InvalidCursor, match="invalid cursor"):
        manager.list_jobs(cursor=cursor)


def test_handed_out_cursor_decodes(manager: JobManager) -> None:
    """A real cursor decodes to the last item's (created_at, id)."""
    for _ in range(3):
        submit(manager)
    items, cursor = manager.list_jobs(limit=2)
    assert cursor is not None
    assert decode_cursor(cursor) == (items[-1].created_at, items[-1].id)


def test_cursor_with_numeric_id_raises_invalid_cursor() -> None:
    """A cursor whose id is not a string is refused like any other bad cursor."""
    with pytest.raises(InvalidCursor, match="invalid cursor"):
        decode_cursor(encode_cursor(["2026-01-01T00:00:00+00:00", 5]))


@pytest.mark.parametrize("moment", ["0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00"])
def test_cursor_out_of_range_is_refused(manager: JobManager, moment: str) -> None:
    """A cursor the API never handed out is a ValueError, not an error deep in SQL."""
    cursor = encode_cursor([moment, str(uuid.uuid4())])
    with pytest.raises(InvalidCursor, match="invalid cursor"):
        manager.list_jobs(cursor=cursor)


# --- compare-and-set transitions ----------------------------------------------------


def test_claim_once(manager: JobManager) -> None:
    """pending → running exactly once; a second claim (any worker) gets None."""
    job = submit(manager)
    claim = manager.claim_job(job_id=job.id, worker=WORKER)
    assert claim is not None
    assert claim.attempt == 1
    assert claim.job.status == JobStatus.running
    assert claim.job.worker == WORKER
    assert claim.job.started_at is not None
    assert claim.job.heartbeat_at is not None
    assert manager.claim_job(job_id=job.id, worker=WORKER) is None
    assert manager.claim_job(job_id=job.id, worker="worker-b") is None
    after = manager.get_job(job_id=job.id)
    assert (after.status, after.attempt, after.worker) == (JobStatus.running, 1, WORKER)


def test_claim_unknown_job_returns_none(manager: JobManager) -> None:
    """A message for a job that does not exist is ignored."""
    assert manager.claim_job(job_id=str(uuid.uuid4()), worker=WORKER) is None


def test_finish_only_by_claiming_attempt(manager: JobManager) -> None:
    """Another attempt number cannot finish, heartbeat or write output for the job."""
    job_id, attempt = running(manager)
    assert not manager.finish_job(job_id=job_id, attempt=attempt + 1, outcome=outcome())
    assert manager.heartbeat(job_id=job_id, attempt=attempt + 1) is not None
    manager.append_output(
        job_id=job_id, attempt=attempt + 1, offset=0, data=b"intruder", progress=RunProgress()
    )
    job = manager.get_job(job_id=job_id)
    assert job.status == JobStatus.running
    assert job.output_bytes == 0
    assert manager.heartbeat(job_id=job_id, attempt=attempt) is None

    assert manager.finish_job(job_id=job_id, attempt=attempt, outcome=outcome())
    job = manager.get_job(job_id=job_id)
    assert job.status == JobStatus.completed
    assert (job.exit_code, job.execution_time) == (0, 0.5)
    assert job.results is not None
    attempts = job.results.pop("attempts")
    assert job.results == {"exit_code": 0, "execution_time": 0.5, "output_tail": []}
    assert [(a["attempt"], a["exit_code"], a["status"]) for a in attempts] == [(1, 0, "completed")]
    assert job.completed_at is not None
    assert job.started_at is not None
    assert job.completed_at >= job.started_at


def test_the_last_output_is_stored_with_the_outcome_once(manager: JobManager) -> None:
    """A finish carrying the run's last batch stores both; a batch whose offset is already
    stored (a commit applied but never acknowledged) is not stored twice."""
    job_id, attempt = running(manager)
    manager.append_output(
        job_id=job_id, attempt=attempt, offset=0, data=b"first\n", progress=RunProgress()
    )
    last = OutputBatch(6, b"last\n", RunProgress(completed_nodes=["a"], total_nodes=1))
    stale = OutputBatch(0, b"first\n", RunProgress())

    assert not manager.finish_job(
        job_id=job_id, attempt=attempt + 1, outcome=outcome(), output=last
    )
    assert manager.get_job(job_id=job_id).output_bytes == 6  # not the owner: nothing stored
    assert manager.finish_job(job_id=job_id, attempt=attempt, outcome=outcome(), output=last)

    job = manager.get_job(job_id=job_id)
    assert (job.status, job.output_bytes) == (JobStatus.completed, 11)
    assert job.progress.completed_nodes == 1
    assert manager.read_output(job_id=job_id, offset=0, limit=100).data == "first\nlast\n"
    job_id, attempt = running(manager)
    manager.append_output(
        job_id=job_id, attempt=attempt, offset=0, data=b"first\n", progress=RunProgress()
    )
    assert manager.finish_job(job_id=job_id, attempt=attempt, outcome=outcome(), output=stale)
    assert manager.read_output(job_id=job_id, offset=0, limit=100).data == "first\n"


def test_terminal_states_never_change(manager: JobManager) -> None:
    """Finish twice, cancel, claim, heartbeat or write after the end: nothing changes."""
    job_id, attempt = running(manager)
    assert manager.finish_job(
        job_id=job_id, attempt=attempt, outcome=outcome(JobStatus.failed, "boom")
    )
    before = manager.get_job(job_id=job_id)
    events_before = manager.list_events(job_id=job_id)

    assert not manager.finish_job(job_id=job_id, attempt=attempt, outcome=outcome())
    with pytest.raises(JobConflict, match="already failed"):
        manager.request_cancel(job_id=job_id, reason="too late")
    assert manager.claim_job(job_id=job_id, worker="worker-b") is None
    assert manager.heartbeat(job_id=job_id, attempt=attempt) is not None
    manager.append_output(
        job_id=job_id, attempt=attempt, offset=0, data=b"late", progress=RunProgress()
    )
    assert manager.fail_lost_jobs(stale_before=utcnow() + timedelta(hours=1), reason="x") == []
    assert manager.fail_jobs_of_worker(worker=WORKER, reason="x") == []

    assert manager.get_job(job_id=job_id) == before
    assert before.status == JobStatus.failed
    assert before.error_message == "boom"
    assert manager.list_events(job_id=job_id) == events_before


def test_claim_after_cancel_returns_none(manager: JobManager) -> None:
    """A cancelled pending job is never started by a late message."""
    job = submit(manager)
    manager.request_cancel(job_id=job.id, reason="changed my mind")
    assert manager.claim_job(job_id=job.id, worker=WORKER) is None
    after = manager.get_job(job_id=job.id)
    assert (after.status, after.attempt, after.worker) == (JobStatus.cancelled, 0, None)


def _claim_in_process(
    index: int,
    barrier: Barrier,
    results: Queue[tuple[str, list[tuple[str, int]]]],
    settings: Settings,
    orders: list[list[str]],
) -> None:
    """A worker process: its own engine and manager, released with the others at once."""
    job_ids, worker = orders[index], f"worker-{index}"
    core = build_core(settings, migrate=False)
    claimed: list[tuple[str, int]] = []
    try:
        barrier.wait(timeout=120)
        for job_id in job_ids:
            claim = core.manager.claim_job(job_id=job_id, worker=worker)
            if claim is not None:
                claimed.append((job_id, claim.attempt))
    finally:
        core.manager.dispose()
        results.put((worker, claimed))


@pytest.mark.parametrize("start_method", ["spawn", "forkserver"])
def test_concurrent_workers_claim_each_job_exactly_once(
    manager: JobManager, settings: Settings, start_method: str
) -> None:
    """Worker processes racing over the same jobs: every job runs once, on attempt 1."""
    workers = 4
    job_ids = [submit(manager).id for _ in range(50)]
    orders = [list(job_ids), list(reversed(job_ids))]
    for seed in range(workers - 2):
        shuffled = list(job_ids)
        random.Random(seed).shuffle(shuffled)
        orders.append(shuffled)
    reports = dict(
        run_at_once(
            _claim_in_process, workers, settings, orders, start_method=start_method, timeout=240
        )
    )

    claims = [
        (job_id, attempt, worker) for worker, got in reports.items() for job_id, attempt in got
    ]
    per_job = Counter(job_id for job_id, _, _ in claims)
    assert sorted(per_job) == sorted(job_ids)
    assert set(per_job.values()) == {1}
    assert {attempt for _, attempt, _ in claims} == {1}
    for job_id, _, worker in claims:
        job = manager.get_job(job_id=job_id)
        assert (job.status, job.attempt, job.worker) == (JobStatus.running, 1, worker)
        assert [event.status for event in manager.list_events(job_id=job_id)] == [
            JobStatus.pending,
            JobStatus.running,
        ]


# --- cancel and events ---------------------------------------------------------------


def test_cancel_pending_job_at_once(manager: JobManager) -> None:
    """A pending job becomes cancelled immediately, with an event carrying the reason."""
    job = submit(manager)
    cancelled = manager.request_cancel(job_id=job.id, reason="cancelled by alice")
    assert cancelled.status == JobStatus.cancelled
    assert cancelled.completed_at is not None
    assert cancelled.error_message == "cancelled by alice"
    events = manager.list_events(job_id=job.id)
    assert [(e.status, e.reason, e.attempt, e.worker) for e in events] == [
        (JobStatus.pending, "submitted", 0, None),
        (JobStatus.cancelled, "cancelled by alice", 0, None),
    ]
    with pytest.raises(JobConflict):
        manager.request_cancel(job_id=job.id, reason="again")


def test_cancel_running_job_asks_the_attempt_to_stop(manager: JobManager) -> None:
    """Running → cancel_requested; the next heartbeat returns the reason; the runner ends it."""
    job_id, attempt = running(manager)
    assert manager.heartbeat(job_id=job_id, attempt=attempt) is None
    requested = manager.request_cancel(job_id=job_id, reason="cancelled by bob")
    assert requested.status == JobStatus.running
    assert requested.cancel_requested
    assert manager.heartbeat(job_id=job_id, attempt=attempt) == "cancelled by bob"
    # A repeated request while it is stopping is accepted (it is not terminal yet).
    assert manager.request_cancel(job_id=job_id, reason="cancelled by bob").cancel_requested

    assert manager.finish_job(
        job_id=job_id,
        attempt=attempt,
        outcome=outcome(JobStatus.cancelled, "cancelled by bob"),
    )
    job = manager.get_job(job_id=job_id)
    assert job.status == JobStatus.cancelled
    with pytest.raises(JobConflict):
        manager.request_cancel(job_id=job_id, reason="again")


def test_events_in_order_with_reasons_attempt_and_worker(manager: JobManager) -> None:
    """submitted → claimed → terminal, oldest first, each with its attempt and worker."""
    job_id, attempt = running(manager, worker="host-1")
    manager.finish_job(
        job_id=job_id, attempt=attempt, outcome=outcome(JobStatus.failed, "node boom failed")
    )
    events = manager.list_events(job_id=job_id)
    assert [(e.status, e.reason, e.attempt, e.worker) for e in events] == [
        (JobStatus.pending, "submitted", 0, None),
        (JobStatus.running, "claimed", 1, "host-1"),
        (JobStatus.failed, "node boom failed", 1, "host-1"),
    ]
    times = [event.at for event in events]
    assert times == sorted(times)
    assert all(at.utcoffset() == timedelta(0) for at in times)


# --- idempotency ----------------------------------------------------------------------


def test_idempotent_repeat_returns_first_job(manager: JobManager) -> None:
    """Same key and body → the same job, created False; only one job is recorded."""
    request = JobCreate(pipeline_name="arithmetic", parameters={"initial_value": 1})
    first, created = manager.create_job(
        request=request, user_id=None, idempotency_key="k1", dispatched=False
    )
    assert created
    again, created_again = manager.create_job(
        request=JobCreate(pipeline_name="arithmetic", parameters={"initial_value": 1}),
        user_id=None,
        idempotency_key="k1",
        dispatched=True,
    )
    assert not created_again
    assert again.id == first.id
    assert len(manager.list_jobs()[0]) == 1
    assert len(manager.list_events(job_id=first.id)) == 1


def test_idempotency_key_with_different_body_conflicts(manager: JobManager) -> None:
    """The same key with another body is a JobConflict and records nothing."""
    manager.create_job(
        request=JobCreate(pipeline_name="arithmetic"),
        user_id=None,
        idempotency_key="k1",
        dispatched=False,
    )
    for different in [
        JobCreate(pipeline_name="other"),
        JobCreate(pipeline_name="arithmetic", parameters={"x": 1}),
        JobCreate(pipeline_name="arithmetic", env="prod"),
    ]:
        with pytest.raises(JobConflict, match="Idempotency-Key"):
            manager.create_job(
                request=different, user_id=None, idempotency_key="k1", dispatched=False
            )
    assert len(manager.list_jobs()[0]) == 1


def test_idempotency_keys_are_per_user(manager: JobManager) -> None:
    """Two users using the same key get two jobs."""
    request = JobCreate(pipeline_name="arithmetic")
    alice, _ = manager.create_job(
        request=request, user_id="alice", idempotency_key="k", dispatched=False
    )
    bob, created = manager.create_job(
        request=request, user_id="bob", idempotency_key="k", dispatched=False
    )
    assert created
    assert alice.id != bob.id


def test_concurrent_repeats_of_one_key_create_one_job(manager: JobManager) -> None:
    """Threads submitting the same key at once: one job, one `created`, all get its id."""
    threads = 8
    barrier = threading.Barrier(threads)
    results: list[tuple[str, bool]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def submit_once() -> None:
        try:
            barrier.wait(timeout=30)
            job, created = manager.create_job(
                request=JobCreate(pipeline_name="arithmetic", parameters={"n": 1}),
                user_id=None,
                idempotency_key="same-key",
                dispatched=False,
            )
            with lock:
                results.append((job.id, created))
        except BaseException as exc:
            with lock:
                errors.append(exc)

    workers = [threading.Thread(target=submit_once) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert errors == []
    assert len(results) == threads
    assert len({job_id for job_id, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    assert len(manager.list_jobs()[0]) == 1


# --- output -------------------------------------------------------------------------


def test_output_round_trip(manager: JobManager) -> None:
    """What the runner appends is read back, with offsets in bytes."""
    job_id, attempt = running(manager)
    first, second = b"hello\n", "wörld ✓\n".encode()
    manager.append_output(
        job_id=job_id, attempt=attempt, offset=0, data=first, progress=RunProgress(["a"], 3)
    )
    manager.append_output(
        job_id=job_id,
        attempt=attempt,
        offset=len(first),
        data=second,
        progress=RunProgress(["a", "b"], 3),
    )
    chunk = manager.read_output(job_id=job_id, offset=0, limit=1024)
    assert chunk.data == "hello\nwörld ✓\n"
    assert (chunk.offset, chunk.next_offset) == (0, len(first) + len(second))
    assert not chunk.complete
    job = manager.get_job(job_id=job_id)
    assert job.output_bytes == len(first) + len(second)
    assert (job.progress.completed_nodes, job.progress.total_nodes) == (2, 3)
    rest = manager.read_output(job_id=job_id, offset=len(first), limit=1024)
    assert (rest.offset, rest.data) == (len(first), "wörld ✓\n")


def test_read_of_a_job_without_output(manager: JobManager) -> None:
    """No output yet: empty data at the requested offset; complete only once terminal."""
    job = submit(manager)
    chunk = manager.read_output(job_id=job.id, offset=0, limit=10)
    assert (chunk.offset, chunk.next_offset, chunk.data, chunk.complete) == (0, 0, "", False)
    manager.request_cancel(job_id=job.id, reason="x")
    chunk = manager.read_output(job_id=job.id, offset=0, limit=10)
    assert (chunk.data, chunk.complete) == ("", True)


@pytest.mark.parametrize("limit", [4, 5, 7, 13, 64, 1000])
@pytest.mark.parametrize("batch", [1, 3, 10, 4096])
def test_paging_reassembles_multibyte_text(manager: JobManager, limit: int, batch: int) -> None:
    """Small pages over characters split across batches rebuild the single-read text."""
    text = MULTIBYTE_UNIT * 40
    job_id, attempt = running(manager)
    write(manager, job_id, attempt, text.encode(), batch=batch)
    manager.finish_job(job_id=job_id, attempt=attempt, outcome=outcome())

    single = manager.read_output(job_id=job_id, offset=0, limit=1 << 20)
    assert single.data == text
    assert single.complete
    chunks = read_all(manager, job_id, limit=limit)
    assert "".join(chunk.data for chunk in chunks) == text
    assert all("\ufffd" not in chunk.data for chunk in chunks)
    assert all(chunk.offset == prev.next_offset for prev, chunk in itertools.pairwise(chunks))
    assert chunks[-1].next_offset == len(text.encode())


def test_read_from_inside_a_character_starts_at_the_next_one(manager: JobManager) -> None:
    """An offset inside a multibyte character skips to the next character boundary."""
    job_id, attempt = running(manager)
    manager.append_output(
        job_id=job_id, attempt=attempt, offset=0, data="a🎉b".encode(), progress=RunProgress()
    )
    for inside in (2, 3, 4):
        chunk = manager.read_output(job_id=job_id, offset=inside, limit=100)
        assert (chunk.offset, chunk.data) == (5, "b")


def test_complete_only_when_terminal_and_read_to_the_end(manager: JobManager) -> None:
    """`complete` is false while running, and after the end only on the last page."""
    job_id, attempt = running(manager)
    data = b"line\n" * 100
    write(manager, job_id, attempt, data, batch=100)
    while_running = manager.read_output(job_id=job_id, offset=0, limit=1 << 20)
    assert while_running.next_offset == len(data)
    assert not while_running.complete
    manager.finish_job(job_id=job_id, attempt=attempt, outcome=outcome())
    first_page = manager.read_output(job_id=job_id, offset=0, limit=100)
    assert not first_page.complete
    chunks = read_all(manager, job_id, limit=100)
    assert [chunk.complete for chunk in chunks] == [False] * 4 + [True]
    at_end = manager.read_output(job_id=job_id, offset=len(data), limit=100)
    assert (at_end.data, at_end.complete, at_end.next_offset) == ("", True, len(data))


def test_output_cap_keeps_head_and_latest_tail(
    manager: JobManager, settings: Settings, db: Engine
) -> None:
    """1 MiB in 64 KiB batches: stored ≤ LOG_MAX_BYTES, head and tail kept, drops counted."""
    cap = settings.log_max_bytes
    written = 1024 * 1024
    data = "".join(f"line {i:07d}\n" for i in range(written // 13 + 1)).encode()[:written]
    job_id, attempt = running(manager)
    for offset in range(0, written, 64 * 1024):
        manager.append_output(
            job_id=job_id,
            attempt=attempt,
            offset=offset,
            data=data[offset : offset + 64 * 1024],
            progress=RunProgress(),
        )
        stored = stored_bytes(db, job_id)
        assert stored <= cap
        job = manager.get_job(job_id=job_id)
        assert job.output_bytes == offset + 64 * 1024
        assert job.output_dropped_bytes == job.output_bytes - stored

    assert stored >= cap * 3 // 4
    head = manager.read_output(job_id=job_id, offset=0, limit=written)
    assert head.offset == 0
    assert head.data.encode() == data[: head.next_offset]
    assert 0 < head.next_offset < written
    tail = manager.read_output(job_id=job_id, offset=head.next_offset, limit=written)
    assert tail.offset > head.next_offset
    assert tail.data.encode() == data[tail.offset :]
    assert tail.next_offset == written
    assert (head.next_offset - head.offset) + (tail.next_offset - tail.offset) == stored
    assert not tail.complete

    gap_middle = (head.next_offset + tail.offset) // 2
    from_gap = manager.read_output(job_id=job_id, offset=gap_middle, limit=100)
    assert from_gap.offset == tail.offset
    assert from_gap.data.encode() == data[tail.offset : tail.offset + 100]

    manager.finish_job(job_id=job_id, attempt=attempt, outcome=outcome())
    chunks = read_all(manager, job_id, limit=1000)
    assert "".join(chunk.data for chunk in chunks) == head.data + tail.data


@pytest.mark.parametrize("batch", [1000, 4096, 100_000])
def test_output_cap_with_other_batch_sizes(
    manager: JobManager, settings: Settings, db: Engine, batch: int
) -> None:
    """Batches that straddle the head limit or the rolling tail keep the same accounting."""
    written = 300_000
    data = bytes(random.Random(batch).choices(b"abcdefghij\n", k=written))
    job_id, attempt = running(manager)
    write(manager, job_id, attempt, data, batch=batch)
    stored = stored_bytes(db, job_id)
    job = manager.get_job(job_id=job_id)
    assert stored <= settings.log_max_bytes
    assert job.output_bytes == written
    assert job.output_dropped_bytes == written - stored
    head = manager.read_output(job_id=job_id, offset=0, limit=written)
    tail = manager.read_output(job_id=job_id, offset=head.next_offset, limit=written)
    assert head.data.encode() == data[: head.next_offset]
    assert tail.data.encode() == data[tail.offset :]
    assert tail.next_offset == written
    assert len(head.data) + len(tail.data) == stored


def test_multibyte_output_over_the_cap_can_be_read_to_the_end(
    manager: JobManager, settings: Settings
) -> None:
    """'café ✓ 🎉' repeated past the cap: paging reaches the tail and completes."""
    data = (MULTIBYTE_UNIT * (3 * settings.log_max_bytes // len(MULTIBYTE_UNIT))).encode()
    job_id, attempt = running(manager)
    write(manager, job_id, attempt, data, batch=64 * 1024)
    manager.finish_job(job_id=job_id, attempt=attempt, outcome=outcome())
    chunks = read_all(manager, job_id, limit=4096)
    assert chunks[-1].next_offset == len(data)
    assert "\ufffd" not in "".join(chunk.data for chunk in chunks)


def test_output_ending_in_a_partial_character_completes(manager: JobManager) -> None:
    """A terminal job's output is always readable to `complete`, even if it ends badly."""
    job_id, attempt = running(manager)
    manager.append_output(
        job_id=job_id, attempt=attempt, offset=0, data=b"abc\xf0\x9f", progress=RunProgress()
    )
    manager.finish_job(job_id=job_id, attempt=attempt, outcome=outcome(JobStatus.failed, "x"))
    chunks = read_all(manager, job_id, limit=100)
    assert chunks[-1].complete


def test_paging_with_limit_below_character_width_progresses(manager: JobManager) -> None:
    """limit=1 over 'é🎉' still moves forward (a page holds at least one character)."""
    job_id, attempt = running(manager)
    manager.append_output(
        job_id=job_id, attempt=attempt, offset=0, data="é🎉".encode(), progress=RunProgress()
    )
    manager.finish_job(job_id=job_id, attempt=attempt, outcome=outcome())
    chunks = read_all(manager, job_id, limit=1)
    assert "".join(chunk.data for chunk in chunks) == "é🎉"


# --- the reaper ----------------------------------------------------------------------


def test_fail_lost_jobs_only_fails_stale_running_jobs(manager: JobManager) -> None:
    """Only running jobs whose heartbeat is older than `stale_before` fail, as worker lost."""
    pending = submit(manager)
    finished_id, finished_attempt = running(manager)
    manager.finish_job(job_id=finished_id, attempt=finished_attempt, outcome=outcome())
    stale_id, stale_attempt = running(manager, worker="host-gone")
    cutoff = utcnow()
    fresh_id, fresh_attempt = running(manager, worker="host-alive")
    assert manager.heartbeat(job_id=fresh_id, attempt=fresh_attempt) is None

    failed = manager.fail_lost_jobs(stale_before=cutoff, reason="no heartbeat for 60 s")
    assert failed == [stale_id]
    stale = manager.get_job(job_id=stale_id)
    assert stale.status == JobStatus.failed
    assert stale.error_message is not None
    assert "worker lost" in stale.error_message
    assert "no heartbeat for 60 s" in stale.error_message
    assert stale.completed_at is not None
    last = manager.list_events(job_id=stale_id)[-1]
    assert (last.status, last.attempt, last.worker) == (JobStatus.failed, 1, "host-gone")
    assert last.reason is not None
    assert "worker lost" in last.reason
    # The lost attempt, should it come back, can no longer touch the job.
    assert manager.heartbeat(job_id=stale_id, attempt=stale_attempt) is not None
    assert not manager.finish_job(job_id=stale_id, attempt=stale_attempt, outcome=outcome())

    assert manager.get_job(job_id=pending.id).status == JobStatus.pending
    assert manager.get_job(job_id=fresh_id).status == JobStatus.running
    assert manager.get_job(job_id=finished_id).status == JobStatus.completed
    assert manager.fail_lost_jobs(stale_before=cutoff, reason="again") == []


def test_fail_jobs_of_worker(manager: JobManager) -> None:
    """A restarting worker fails only its own running jobs, as worker lost."""
    mine = [running(manager, worker="host-1")[0] for _ in range(2)]
    other_id, _ = running(manager, worker="host-2")
    pending = submit(manager)
    failed = manager.fail_jobs_of_worker(worker="host-1", reason="worker restarted")
    assert sorted(failed) == sorted(mine)
    for job_id in mine:
        job = manager.get_job(job_id=job_id)
        assert job.status == JobStatus.failed
        assert job.error_message is not None
        assert "worker lost" in job.error_message
        assert "host-1" in job.error_message
    assert manager.get_job(job_id=other_id).status == JobStatus.running
    assert manager.get_job(job_id=pending.id).status == JobStatus.pending
    assert manager.fail_jobs_of_worker(worker="host-1", reason="again") == []


# --- dispatch bookkeeping ----------------------------------------------------------------


def _set_dispatch(db: Engine, job_id: str, *, ago: timedelta, count: int) -> None:
    with db.begin() as connection:
        connection.execute(
            update(jobs)
            .where(jobs.c.id == job_id)
            .values(dispatched_at=utcnow() - ago, dispatch_count=count)
        )


def test_jobs_to_dispatch(manager: JobManager) -> None:
    """Never-published pending jobs are due; just-published, running and cancelled are not."""
    window = timedelta(seconds=60)
    unpublished = submit(manager, dispatched=False)
    published = submit(manager, dispatched=True)
    claimed = submit(manager, dispatched=False)
    assert manager.claim_job(job_id=claimed.id, worker=WORKER) is not None
    cancelled = submit(manager, dispatched=False)
    manager.request_cancel(job_id=cancelled.id, reason="x")

    assert [job.id for job, _ in manager.jobs_to_dispatch(redispatch_after=window)] == [
        unpublished.id
    ]
    manager.mark_all_dispatched(job_ids=[unpublished.id])
    assert manager.jobs_to_dispatch(redispatch_after=window) == []

    manager.mark_undispatched(job_id=published.id)
    assert [job.id for job, _ in manager.jobs_to_dispatch(redispatch_after=window)] == [
        published.id
    ]
    manager.forget_dispatches()
    assert [job.id for job, _ in manager.jobs_to_dispatch(redispatch_after=window)] == [
        unpublished.id,
        published.id,
    ]


def test_jobs_to_dispatch_is_oldest_first_and_limited(manager: JobManager) -> None:
    """Due jobs come oldest first, at most `limit` of them."""
    created = [submit(manager).id for _ in range(5)]
    due = manager.jobs_to_dispatch(redispatch_after=timedelta(seconds=60), limit=3)
    assert [job.id for job, _ in due] == created[:3]


def test_jobs_backing_off_do_not_hide_a_due_job_behind_the_limit(
    manager: JobManager, db: Engine
) -> None:
    """The limit counts due jobs only: older ones still backing off do not fill it."""
    backing_off = [submit(manager, dispatched=True).id for _ in range(3)]
    for job_id in backing_off:
        _set_dispatch(db, job_id, ago=timedelta(minutes=5), count=7)  # due after 64 minutes
    unpublished = submit(manager, dispatched=False)
    due = manager.jobs_to_dispatch(redispatch_after=timedelta(seconds=60), limit=3)
    assert [(job.id, again) for job, again in due] == [(unpublished.id, False)]


def test_redispatch_backs_off(manager: JobManager, db: Engine) -> None:
    """A published but unclaimed job is due again after the window, doubling per publish."""
    window = timedelta(seconds=60)
    job = submit(manager, dispatched=True)

    def due() -> bool:
        return job.id in {j.id for j, _ in manager.jobs_to_dispatch(redispatch_after=window)}

    _set_dispatch(db, job.id, ago=timedelta(seconds=30), count=1)
    assert not due()
    _set_dispatch(db, job.id, ago=timedelta(seconds=90), count=1)
    assert due()
    _set_dispatch(db, job.id, ago=timedelta(seconds=90), count=2)
    assert not due()
    _set_dispatch(db, job.id, ago=timedelta(seconds=130), count=2)
    assert due()
    _set_dispatch(db, job.id, ago=timedelta(seconds=230), count=3)
    assert not due()
    _set_dispatch(db, job.id, ago=timedelta(seconds=250), count=3)
    assert due()
    # The backoff is capped: a long-lost message is still re-published eventually.
    _set_dispatch(db, job.id, ago=timedelta(hours=3), count=50)
    assert due()

    manager.mark_all_dispatched(job_ids=[job.id])
    assert not due()
    with db.connect() as connection:
        count = connection.execute(
            select(jobs.c.dispatch_count).where(jobs.c.id == job.id)
        ).scalar_one()
    assert count == 51
