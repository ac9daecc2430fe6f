"""Change notices: after a job's state or output changes, tell whoever listens.

The store does not know how a notice travels (Redis pub/sub in this gateway); it
calls the listener `announce_to` gave it, after the transaction has committed,
with the job's id and what changed (`state` or `output`). A listener that fails
is logged and ignored: waiters also re-read the job now and then, so a lost
notice delays an answer, never loses it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Literal

from app.schemas.jobs import Job
from app.store.retries import JobRetries
from app.store.types import EVERYONE, Claim, OutputBatch, RunOutcome, RunProgress, Visibility

logger = logging.getLogger(__name__)

ChangeKind = Literal["state", "output"]
Listener = Callable[[str, ChangeKind], None]


class ChangeNotices(JobRetries):
    """The transitions and output appends, each followed by a notice to the listener."""

    _listener: Listener | None = None

    def announce_to(self, listener: Listener | None) -> None:
        """Call `listener(job_id, kind)` after each committed change (None: nobody)."""
        self._listener = listener

    def _announce(self, job_id: str, kind: ChangeKind) -> None:
        if self._listener is None:
            return
        try:
            self._listener(job_id, kind)
        except Exception as exc:  # a notice is an optimisation: never fail a transition
            logger.warning("change notice for job %s not sent: %s", job_id, exc)

    def claim_job(self, *, job_id: str, worker: str) -> Claim | None:
        claim = super().claim_job(job_id=job_id, worker=worker)
        if claim is not None:
            self._announce(job_id, "state")
        return claim

    def finish_job(
        self, *, job_id: str, attempt: int, outcome: RunOutcome, output: OutputBatch | None = None
    ) -> bool:
        finished = super().finish_job(
            job_id=job_id, attempt=attempt, outcome=outcome, output=output
        )
        if finished:
            self._announce(job_id, "state")
        return finished

    def request_cancel(self, *, job_id: str, reason: str, visibility: Visibility = EVERYONE) -> Job:
        job = super().request_cancel(job_id=job_id, reason=reason, visibility=visibility)
        self._announce(job_id, "state")
        return job

    def append_output(
        self, *, job_id: str, attempt: int, offset: int, data: bytes, progress: RunProgress
    ) -> None:
        super().append_output(
            job_id=job_id, attempt=attempt, offset=offset, data=data, progress=progress
        )
        self._announce(job_id, "output")
