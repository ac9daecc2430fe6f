"""A worker's graceful stop: finish what runs within a grace period, then end the rest.

On SIGTERM or Ctrl-C, Celery stops consuming and waits for its running tasks,
for as long as they take. This bounds the wait: `WORKER_STOP_GRACE_SECONDS`
after the stop began, the jobs still running under this worker's name are ended
at once by the same compare-and-set as a lost worker's ("worker lost", so a job
whose retry policy names `worker_lost` goes back to `pending` for another
worker). Each run sees at its next heartbeat that it no longer owns its job and
stops its process group; its task returns and the worker exits. Should a run
not stop, a cold shutdown follows (its process guard then stops the run).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable

from app.core.config import Settings
from app.store import JobManager

logger = logging.getLogger(__name__)

COLD_STOP_AFTER_SECONDS = 15.0  # after the grace period: runs stop within ~5 s of it


class GracefulStop:
    """Started once, when the worker's stop begins (from Celery's signal handler: `begin`
    only starts a thread; the thread logs and talks to the database)."""

    def __init__(
        self, manager: Callable[[], JobManager], settings: Settings, *, worker: str
    ) -> None:
        self._manager = manager
        self._grace = settings.worker_stop_grace_seconds
        self._worker = worker
        self._thread: threading.Thread | None = None

    def begin(self) -> None:
        """Start the grace period (a second stop signal changes nothing)."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._expire, name="graceful-stop", daemon=True)
        self._thread.start()

    def _expire(self) -> None:
        logger.warning(
            "worker %s stopping: running jobs have %g s to finish", self._worker, self._grace
        )
        threading.Event().wait(self._grace)
        self.end_running_jobs()
        threading.Event().wait(COLD_STOP_AFTER_SECONDS)
        logger.error("worker %s: runs still going after the grace period; stopping cold", self)
        os.kill(os.getpid(), signal.SIGQUIT)

    def end_running_jobs(self) -> list[str]:
        """Fail (or, by their retry policy, retry) the jobs this worker still runs."""
        reason = (
            f"the worker was stopped and the job did not finish within its "
            f"{self._grace:g} s grace period (WORKER_STOP_GRACE_SECONDS)"
        )
        try:
            ended = self._manager().fail_jobs_of_worker(worker=self._worker, reason=reason)
        except Exception:
            logger.exception("worker %s: could not end its running jobs", self._worker)
            return []
        if ended:
            logger.warning("worker %s stopped: ended its unfinished jobs %s", self._worker, ended)
        return ended

    def __str__(self) -> str:
        return self._worker
