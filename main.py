"""API entry: `python main.py` (with the request limits), or `uvicorn main:app`.

With no `CELERY_BROKER_URL`, `python main.py` runs standalone: it also starts an
embedded Redis and one local Celery worker, and stops them on exit.
"""

from __future__ import annotations

import logging
import os
import signal
from types import FrameType

from app.api.server import serve
from app.application import create_app
from app.core.config import get_settings
from app.core.logs import configure_logging
from app.standalone import standalone_stack

logger = logging.getLogger("main")

app = create_app()


def _exit_cleanly(_signum: int, _frame: FrameType | None) -> None:
    # uvicorn re-raises the signal that stopped it once it has shut down; exiting
    # here (instead of dying of the signal) lets the standalone stack stop its
    # worker and Redis in order.
    raise SystemExit(0)


def main() -> None:
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format, batched=True)
    for stop_signal in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop_signal, _exit_cleanly)
    if settings.celery_broker_url:
        serve(app, settings)
        return
    with standalone_stack(settings) as stack:
        logger.info("standalone: API on http://%s:%s", stack.host, stack.port)
        if stack.api_workers > 1:
            # The API's worker processes read their settings afresh: hand them the stack's.
            os.environ["CELERY_BROKER_URL"] = stack.celery_broker_url or ""
            os.environ["DATABASE_URL"] = stack.database_url
            os.environ["KEDRO_PROJECT_PATH"] = str(stack.kedro_project_path)
        serve(create_app(stack), stack)


if __name__ == "__main__":
    main()
