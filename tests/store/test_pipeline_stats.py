"""A pipeline's recent runs and their aggregates (the dashboard's pipeline page)."""

from __future__ import annotations

from app.schemas.jobs import JobCreate, JobStatus
from app.schemas.stats import PipelineStats
from app.store import JobManager, RunOutcome
from app.store.types import Visibility


def run(manager: JobManager, pipeline: str, status: JobStatus, seconds: float, user: str) -> str:
    job, _ = manager.create_job(
        request=JobCreate(pipeline_name=pipeline), user_id=user, dispatched=True
    )
    claim = manager.claim_job(job_id=job.id, worker="w")
    assert claim is not None
    outcome = RunOutcome(status, 0 if status == JobStatus.completed else 1, seconds, None, {})
    assert manager.finish_job(job_id=job.id, attempt=claim.attempt, outcome=outcome)
    return job.id


def test_recent_runs_give_success_rate_and_percentiles(manager: JobManager) -> None:
    ids = [
        run(manager, "p", JobStatus.completed, float(seconds), "alice") for seconds in range(1, 21)
    ]
    failed = run(manager, "p", JobStatus.failed, 99.0, "alice")
    run(manager, "other", JobStatus.completed, 5.0, "alice")
    bobs = run(manager, "p", JobStatus.completed, 7.0, "bob")

    alice = Visibility(user_id="alice", sees_all=False)
    stats = PipelineStats.of("p", manager.recent_runs(pipeline_name="p", visibility=alice))
    assert [r.id for r in stats.runs] == [failed, *reversed(ids)]  # newest first, alice's only
    assert (stats.finished, stats.completed, stats.failed) == (21, 20, 1)
    assert stats.success_rate == round(20 / 21, 4)
    assert (stats.p50_seconds, stats.p95_seconds) == (10.0, 19.0)

    everyone = manager.recent_runs(pipeline_name="p", limit=2)
    assert [r.id for r in everyone] == [bobs, failed]
    assert PipelineStats.of("none", []).success_rate is None
