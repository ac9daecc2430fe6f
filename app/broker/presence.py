"""A worker announces itself, and its project's pipelines, through the database.

Heartbeat rows instead of Celery broadcasts: the API may run on another machine
and needs no connection to the workers to list them or check their health.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Sequence

from app.core.config import Settings
from app.runner.inspector import ProjectReport, inspect_project
from app.store import JobManager

logger = logging.getLogger(__name__)


# What this process last learnt of its Kedro project. A worker inspects before its pool
# forks (`inspect_and_remember` at startup), so every pool process starts knowing the
# project's Kedro version and nodes without asking the project's interpreter again.
_known: dict[tuple[str, str], ProjectReport] = {}


def _key(settings: Settings) -> tuple[str, str]:
    return (str(settings.kedro_project_path), settings.kedro_python)


def inspect_and_remember(settings: Settings) -> ProjectReport:
    """Inspect the Kedro project and keep the report for this process's runs."""
    report = inspect_project(settings)
    if report.ok:
        _known[_key(settings)] = report
    return report


def known_project(settings: Settings) -> ProjectReport | None:
    """The last good report on the project, if this process has one."""
    return _known.get(_key(settings))


def publish_project(
    manager: JobManager,
    settings: Settings,
    *,
    worker: str,
    queues: Sequence[str],
    fresh: bool = True,
) -> ProjectReport:
    """Store the project's pipelines for every queue this worker serves.

    The project is inspected anew unless `fresh` is False and this process already knows it.
    """
    known = None if fresh else known_project(settings)
    report = known or inspect_and_remember(settings)
    if report.pipelines is not None:
        for queue in queues:
            manager.record_project(
                queue=queue,
                pipelines=report.pipelines,
                project_path=str(settings.kedro_project_path),
                kedro_version=report.kedro_version,
                worker=worker,
            )
    return report


class WorkerPresence:
    """Announces the worker, then refreshes its heartbeat row until stopped."""

    def __init__(
        self,
        manager: JobManager,
        settings: Settings,
        *,
        name: str,
        queues: Sequence[str],
        concurrency: int | None,
    ) -> None:
        self._manager = manager
        self._settings = settings
        self._name = name
        self._queues = list(queues)
        self._concurrency = concurrency
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="worker-presence", daemon=True)

    @property
    def interval(self) -> float:
        return max(0.5, min(5.0, self._settings.worker_lost_after_seconds / 3))

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=5)
        self._manager.stop_worker(name=self._name)

    def _run(self) -> None:
        report = publish_project(
            self._manager, self._settings, worker=self._name, queues=self._queues, fresh=False
        )
        self._manager.record_worker(
            name=self._name,
            hostname=socket.gethostname(),
            queues=self._queues,
            concurrency=self._concurrency,
            pid=os.getpid(),
            project_path=str(self._settings.kedro_project_path),
            kedro_python=self._settings.kedro_python,
            kedro_version=report.kedro_version,
            project_ok=report.ok,
            project_error=report.error,
            runner_mode=self._settings.runner_mode,
        )
        logger.info("worker %s announced on queues %s", self._name, self._queues)
        while not self._stopped.wait(self.interval):
            try:
                self._manager.touch_worker(name=self._name)
            except Exception:
                logger.exception("worker %s: heartbeat failed; retrying", self._name)
