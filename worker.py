"""Celery worker entry: `celery -A worker worker [-Q queue] [-n name@%h]`."""

from __future__ import annotations

import logging
from typing import Any

from celery.signals import celeryd_init, worker_ready, worker_shutdown, worker_shutting_down

from app.broker import tasks  # noqa: F401  (registers the tasks)
from app.broker.celery_app import celery_app
from app.broker.graceful import GracefulStop
from app.broker.presence import WorkerPresence, inspect_and_remember
from app.core.config import get_settings
from app.core.logs import configure_logging
from app.ops.maintenance import reap_restarted_worker
from app.runner.run import sweep_run_dirs
from app.services import build_core, core_for_this_process

logger = logging.getLogger("worker")
configure_logging(get_settings().log_level, get_settings().log_format)
app = celery_app  # `celery -A worker` looks for `app`
_presence: list[WorkerPresence] = []
_stopping: list[GracefulStop] = []


@celeryd_init.connect  # type: ignore[untyped-decorator]
def _prepare(sender: str | None = None, **_: Any) -> None:
    """Before consuming: upgrade the schema, fail what this worker name had claimed, and
    inspect the Kedro project.

    A worker that starts runs nothing yet, so a `running` job recorded under its
    name belongs to a previous incarnation that died. The project is inspected here,
    before the pool forks, so every pool process runs jobs knowing its Kedro version.
    """
    core = build_core(get_settings())
    if sender:
        reap_restarted_worker(core.manager, sender)
    swept = sweep_run_dirs(core.manager)
    if swept:
        logger.info("removed %d run directories left by stopped workers", len(swept))
    core.manager.dispose()
    inspect_and_remember(get_settings())


@worker_ready.connect  # type: ignore[untyped-decorator]
def _announce(sender: Any = None, **_: Any) -> None:
    """Start the heartbeat row and report the project's pipelines for each queue served."""
    queues = sorted(queue.name for queue in sender.task_consumer.queues)
    presence = WorkerPresence(
        core_for_this_process(get_settings()).manager,
        get_settings(),
        name=sender.hostname,
        queues=queues,
        concurrency=getattr(sender.controller, "concurrency", None),
    )
    presence.start()
    _presence.append(presence)


@worker_shutting_down.connect  # type: ignore[untyped-decorator]
def _begin_stop(sender: str | None = None, **_: Any) -> None:
    """SIGTERM or Ctrl-C: Celery takes no more jobs; bound the wait for running ones."""
    if not sender or _stopping:
        return
    stop = GracefulStop(
        lambda: core_for_this_process(get_settings()).manager, get_settings(), worker=sender
    )
    _stopping.append(stop)
    stop.begin()


@worker_shutdown.connect  # type: ignore[untyped-decorator]
def _retire(**_: Any) -> None:
    for presence in _presence:
        presence.stop()
