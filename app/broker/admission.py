"""Release waiting jobs: admit what fits the limits, then publish it.

Called after a submit, by the maintenance pass, and by a worker when a run ends
(so a freed slot does not wait for the next pass). A publish that fails leaves
the job admitted but unpublished: the maintenance pass publishes it later.
"""

from __future__ import annotations

from app.broker.publisher import Broker
from app.store import JobManager

RELEASE_BATCH = 200


def release_waiting(manager: JobManager, broker: Broker, *, most: int = RELEASE_BATCH) -> int:
    """Admit up to `most` waiting jobs that fit the limits and publish them; how many."""
    admitted = manager.admit_waiting(most=most)
    for job in admitted:
        if not broker.publish(job):
            manager.mark_undispatched(job_id=job.id)
    return len(admitted)
