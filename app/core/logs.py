"""One logging setup for the API and the worker.

`LOG_FORMAT=json` writes one JSON object per line. A record about a job carries
its id: from `extra={"job_id": ...}`, or from `job_context` around a task; a record
about several jobs (a group of submits) carries `job_ids`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import threading
import time
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_current_job: ContextVar[str | None] = ContextVar("current_job", default=None)


@contextlib.contextmanager
def job_context(job_id: str) -> Iterator[None]:
    """Tag every record logged inside with `job_id`."""
    token = _current_job.set(job_id)
    try:
        yield
    finally:
        _current_job.reset(token)


class _JobIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "job_id", None) is None:
            record.job_id = _current_job.get()
        return True


_CREDENTIAL_PARAMETER = re.compile(
    r"([?&](?:[^=&]*(?:key|token|secret|password|auth)[^=&]*)=)[^&\s\"]*", re.IGNORECASE
)


class _CredentialFilter(logging.Filter):
    """Blank query-string values that look like credentials (`?api_key=...`) in access logs."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                _CREDENTIAL_PARAMETER.sub(r"\1[redacted]", arg) if isinstance(arg, str) else arg
                for arg in record.args
            )
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, job_id or job_ids,
    exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        job_id = getattr(record, "job_id", None)
        if job_id:
            entry["job_id"] = job_id
        job_ids = getattr(record, "job_ids", None)
        if job_ids:
            entry["job_ids"] = job_ids
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class BatchingStreamHandler(logging.StreamHandler[Any]):
    """A stream handler that writes lines below WARNING a few milliseconds late, many in
    one write, from a thread of its own; a warning or an error is written at once,
    after the lines before it.

    A busy API logs a line per request. Written at once, each line is a system call on
    the event loop's thread, which lets go of the GIL and must then get it back from
    the thread recording submits. For the API's processes only: a forked child would
    have no writer thread."""

    def __init__(self, delay: float = 0.01) -> None:
        super().__init__()
        self._delay = delay
        self._pending: list[str] = []
        self._writing = threading.Lock()  # the stream's order: one batch at a time
        self._wake = threading.Event()
        self._closed = False
        threading.Thread(target=self._write_batches, name="log-writer", daemon=True).start()

    def emit(self, record: logging.LogRecord) -> None:  # called holding `self.lock`
        try:
            self._pending.append(self.format(record) + self.terminator)
        except Exception:
            self.handleError(record)
            return
        if record.levelno >= logging.WARNING:
            self.flush()
        elif len(self._pending) == 1:
            self._wake.set()

    def flush(self) -> None:
        """Write every pending line now. Takes `self.lock`, then the turn to write (the
        order `emit` holds them in), and writes after giving the first one back."""
        with self.lock:  # type: ignore[union-attr]
            self._writing.acquire()
            lines, self._pending = self._pending, []
        try:
            if lines:
                self.stream.write("".join(lines))
                self.stream.flush()
        finally:
            self._writing.release()

    def close(self) -> None:
        self._closed = True
        self._wake.set()
        with contextlib.suppress(Exception):  # as `_write_batches`: nowhere to report it
            self.flush()
        super().close()

    def _write_batches(self) -> None:
        while not self._closed:
            self._wake.wait()
            time.sleep(self._delay)  # let the lines of the next few milliseconds join
            self._wake.clear()
            # A stream that fails (closed, a full disk) has nowhere to report it either.
            with contextlib.suppress(Exception):
                self.flush()


def configure_logging(
    level: str = "INFO", log_format: str = "text", *, batched: bool = False
) -> None:
    """Replace the gateway's handler on the root logger; safe to call more than once.

    `batched`: write lines below WARNING in batches (`BatchingStreamHandler`)."""
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_gateway", False)]:
        root.removeHandler(old)
        old.close()
    handler: logging.StreamHandler[Any] = (
        BatchingStreamHandler() if batched else logging.StreamHandler()
    )
    handler.setFormatter(
        JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    )
    handler.addFilter(_JobIdFilter())
    handler.addFilter(_CredentialFilter())
    handler._gateway = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())
