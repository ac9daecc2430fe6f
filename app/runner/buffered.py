"""What a run writes to the store, kept while the database is unavailable.

A running job writes its output (with progress and heartbeat) in batches, its
heartbeat, and at the end its outcome. When the database is down (PostgreSQL
restarting, a SQLite file locked past its busy timeout) the run goes on: output
waits in a spool (memory up to `SPOOL_MEMORY_BYTES`, then a private temporary
file), heartbeats are skipped, and everything is written, in order, once the
database answers again. A batch is stored at its offset only, so one whose
commit was applied but never acknowledged is not stored twice.

The database may stay away for at most `WORKER_LOST_AFTER_SECONDS`: after that
the reaper fails the job when it comes back, and this attempt's writes no
longer match the job (they are then ignored, like any late attempt's).
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from functools import partial
from typing import TypeVar

from app.store import JobManager, OutputBatch, RunOutcome, RunProgress
from app.store.outage import is_database_unavailable

logger = logging.getLogger(__name__)

T = TypeVar("T")

SPOOL_MEMORY_BYTES = 4 * 1024 * 1024
WRITE_BYTES = 1024 * 1024
RETRY_SECONDS = (0.25, 0.5, 1.0, 2.0)  # between attempts while the database is down


class DatabaseStillDown(Exception):
    """The outcome could not be written before the run gave up waiting."""


class BufferedWrites:
    """One attempt's writes: output, heartbeats and the outcome, buffered through outages."""

    def __init__(self, manager: JobManager, *, job_id: str, attempt: int, offset: int) -> None:
        self._manager = manager
        self._job_id = job_id
        self._attempt = attempt
        self.stored = offset  # logical end of the output the database has
        self._spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY_BYTES)  # noqa: SIM115
        self._read_at = 0  # spool position of the first byte not yet stored
        self._progress = RunProgress()
        self._down_since: float | None = None
        self._failures = 0
        self._next_try = 0.0

    @property
    def pending_bytes(self) -> int:
        """Output taken but not stored yet."""
        return self._spool.tell() - self._read_at

    @property
    def database_down(self) -> bool:
        return self._down_since is not None

    def append(self, data: bytes, progress: RunProgress, *, store: bool = True) -> None:
        """Take a batch of output; store what is pending if the database answers (unless
        not `store`: the last batch is stored with the outcome, in `finish`)."""
        self._spool.write(data)
        self._progress = progress
        if store:
            self.flush()

    def flush(self, *, force: bool = False, keep: int = 0) -> bool:
        """Store pending output, oldest first, but for up to `keep` bytes; False if the
        database is still down."""
        if not force and self._down_since is not None and time.monotonic() < self._next_try:
            return False
        end = self._spool.tell()
        while end - self._read_at > keep:
            data = self._unstored(WRITE_BYTES)
            if self._attempt_write(partial(self._store, data)) is _UNAVAILABLE:
                return False
            self._read_at += len(data)
            self.stored += len(data)
        if self._read_at == end:  # everything is stored: start the spool afresh
            self._spool.seek(0)
            self._spool.truncate()
            self._read_at = 0
        return True

    def _store(self, data: bytes) -> None:
        self._manager.append_output(
            job_id=self._job_id,
            attempt=self._attempt,
            offset=self.stored,
            data=data,
            progress=self._progress,
        )

    def _pending_batch(self) -> OutputBatch | None:
        """What is taken but not stored, as one batch (None if nothing is)."""
        data = self._unstored(self.pending_bytes)
        return OutputBatch(self.stored, data, self._progress) if data else None

    def _unstored(self, size: int) -> bytes:
        """Up to `size` bytes taken but not stored, oldest first; the spool stays at its end."""
        end = self._spool.tell()
        self._spool.seek(self._read_at)
        data = self._spool.read(min(size, end - self._read_at))
        self._spool.seek(end)
        return data

    def heartbeat(self) -> str | None:
        """Refresh the heartbeat; why the run must stop, or None (also while the database
        is down: the run goes on)."""
        if not self.flush():
            return None
        reason = self._attempt_write(
            lambda: self._manager.heartbeat(job_id=self._job_id, attempt=self._attempt)
        )
        return reason if isinstance(reason, str) else None

    def finish(self, outcome: RunOutcome, *, wait_seconds: float) -> bool:
        """Store the rest of the output and the outcome (the last batch in the outcome's
        transaction), waiting up to `wait_seconds` for the database. False if the attempt
        no longer owns the job."""
        deadline = time.monotonic() + wait_seconds
        while True:
            if self.flush(force=True, keep=WRITE_BYTES):
                finished = self._attempt_write(
                    partial(
                        self._manager.finish_job,
                        job_id=self._job_id,
                        attempt=self._attempt,
                        outcome=outcome,
                        output=self._pending_batch(),
                    )
                )
                if finished is not _UNAVAILABLE:
                    self._spool.close()
                    return bool(finished)
            if time.monotonic() > deadline:
                self._spool.close()
                raise DatabaseStillDown(
                    f"job {self._job_id}: the database stayed unavailable for {wait_seconds:g} s; "
                    f"{self.pending_bytes} bytes of output and the outcome were not stored"
                )
            time.sleep(max(0.0, min(self._next_try - time.monotonic(), 2.0)))

    def _attempt_write(self, write: Callable[[], T]) -> T | object:
        try:
            value = write()
        except Exception as exc:
            if not is_database_unavailable(exc):
                raise
            self._note_down(exc)
            return _UNAVAILABLE
        if self._down_since is not None:
            logger.warning(
                "job %s: the database is back after %.1f s; buffered writes stored",
                self._job_id,
                time.monotonic() - self._down_since,
            )
        self._down_since = None
        self._failures = 0
        return value

    def _note_down(self, exc: Exception) -> None:
        now = time.monotonic()
        if self._down_since is None:
            self._down_since = now
            logger.warning(
                "job %s: the database is unavailable (%s); buffering output and going on",
                self._job_id,
                type(exc).__name__,
            )
        self._next_try = now + RETRY_SECONDS[min(self._failures, len(RETRY_SECONDS) - 1)]
        self._failures += 1


_UNAVAILABLE = object()
