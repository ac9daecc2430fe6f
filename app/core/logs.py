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
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import UTC, datetime

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


def configure_logging(level: str = "INFO", log_format: str = "text") -> None:
    """Replace the gateway's handler on the root logger; safe to call more than once."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, "_gateway", False)]:
        root.removeHandler(handler)
    handler = logging.StreamHandler()
    handler.setFormatter(
        JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    )
    handler.addFilter(_JobIdFilter())
    handler.addFilter(_CredentialFilter())
    handler._gateway = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())
