"""API entry: `uvicorn main:app`, or `python main.py`.

With no `CELERY_BROKER_URL`, `python main.py` runs standalone: it also starts an
embedded Redis and one local Celery worker, and stops them on exit.
"""

from __future__ import annotations

import logging
import signal
from types import FrameType

import uvicorn

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
    configure_logging(settings.log_level, settings.log_format)
    for stop_signal in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop_signal, _exit_cleanly)
    if settings.celery_broker_url:
        uvicorn.run(app, host=settings.host, port=settings.port, log_config=None)
        return
    with standalone_stack(settings) as stack:
        logger.info("standalone: API on http://%s:%s", stack.host, stack.port)
        uvicorn.run(create_app(stack), host=stack.host, port=stack.port, log_config=None)


if __name__ == "__main__":
    main()
