"""Workers and the projects they serve: heartbeat rows and pipeline snapshots."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import Column, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from app.schemas.jobs import JobStatus
from app.schemas.pipelines import Pipeline, PipelineList
from app.schemas.workers import Worker
from app.store.base import StoreBase
from app.store.tables import jobs, queue_projects, workers
from app.store.types import utcnow


class WorkerRegistry(StoreBase):
    """Announce, refresh and list workers; store and read project snapshots."""

    def record_worker(
        self,
        *,
        name: str,
        hostname: str,
        queues: Sequence[str],
        concurrency: int | None,
        pid: int,
        project_path: str,
        kedro_python: str,
        kedro_version: str | None,
        project_ok: bool,
        project_error: str | None,
        runner_mode: str,
    ) -> None:
        """Announce a (re)started worker."""
        now = utcnow()
        values = {
            "hostname": hostname,
            "queues": list(queues),
            "concurrency": concurrency,
            "pid": pid,
            "project_path": project_path,
            "kedro_python": kedro_python,
            "kedro_version": kedro_version,
            "project_ok": project_ok,
            "project_error": project_error,
            "started_at": now,
            "last_seen_at": now,
            "stopped_at": None,
            "runner_mode": runner_mode,
            "warm_error": None,
        }
        self._upsert(workers.c.name, name, values)

    def touch_worker(self, *, name: str) -> None:
        """The worker's heartbeat."""
        self._update_worker(name, last_seen_at=utcnow())

    def note_warm_error(self, *, name: str, error: str | None) -> None:
        """Record why warming failed on this worker (None once it works again)."""
        self._update_worker(name, warm_error=error)

    def stop_worker(self, *, name: str) -> None:
        self._update_worker(name, stopped_at=utcnow())

    def _update_worker(self, name: str, **values: Any) -> None:
        with self._write() as connection:
            connection.execute(update(workers).where(workers.c.name == name).values(**values))

    def _upsert(self, key: Column[Any], value: str, values: dict[str, Any]) -> None:
        """Insert the row whose `key` column is `value`, or update it, in one statement."""
        dialect = postgresql if self._engine.dialect.name == "postgresql" else sqlite
        statement = dialect.insert(key.table).values({key.name: value, **values})
        statement = statement.on_conflict_do_update(index_elements=[key], set_=values)
        with self._write() as connection:
            connection.execute(statement)

    def list_workers(self, *, lost_after: timedelta) -> list[Worker]:
        """Every worker seen, with its running jobs counted now; alive if heard within
        `lost_after`."""
        alive_after = utcnow() - lost_after
        running = (
            select(func.count())
            .where(jobs.c.worker == workers.c.name, jobs.c.status == JobStatus.running.value)
            .scalar_subquery()
        )
        with self._read() as connection:
            rows = connection.execute(
                select(workers, running.label("running_jobs")).order_by(workers.c.name)
            ).all()
        return [
            Worker(
                **{k: v for k, v in row._mapping.items() if k in Worker.model_fields},
                alive=row.stopped_at is None and row.last_seen_at > alive_after,
            )
            for row in rows
        ]

    def record_project(
        self,
        *,
        queue: str,
        pipelines: list[Pipeline],
        project_path: str,
        kedro_version: str | None,
        worker: str,
    ) -> None:
        """Store the pipelines a worker found in the project it serves `queue` with."""
        values = {
            "pipelines": [p.model_dump(mode="json") for p in pipelines],
            "project_path": project_path,
            "kedro_version": kedro_version,
            "worker": worker,
            "refreshed_at": utcnow(),
        }
        self._upsert(queue_projects.c.queue, queue, values)

    def get_project(self, *, queue: str) -> PipelineList | None:
        """The last snapshot of the project behind `queue`, or None if none was reported."""
        with self._read() as connection:
            row = connection.execute(
                select(queue_projects).where(queue_projects.c.queue == queue)
            ).one_or_none()
        if row is None:
            return None
        return PipelineList(
            items=[Pipeline.model_validate(item) for item in row.pipelines],
            refreshed_at=row.refreshed_at,
            queue=queue,
            kedro_version=row.kedro_version,
            worker=row.worker,
        )

    def known_queues(self) -> set[str]:
        """Queues some worker has served, at any time."""
        with self._read() as connection:
            rows = connection.execute(select(workers.c.queues)).all()
        return {queue for row in rows for queue in row.queues}
