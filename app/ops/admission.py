"""Admission limits as operators set them: from the `LIMITS` setting at start, or by an
admin at runtime (then waiting jobs that now fit are released at once)."""

from __future__ import annotations

import logging

from app.broker.admission import release_waiting
from app.broker.publisher import Broker
from app.core.config import Settings
from app.schemas.limits import Limits
from app.store import JobManager

logger = logging.getLogger(__name__)


def seed_limits(manager: JobManager, settings: Settings) -> None:
    """Store the `LIMITS` setting unless limits are stored already (raises if it is invalid)."""
    if settings.limits is None:
        return
    limits = Limits.model_validate_json(settings.limits)
    if manager.seed_limits(limits=limits):
        logger.info("admission limits loaded from the LIMITS setting")
    else:
        logger.info("LIMITS setting ignored: limits are stored already (see GET /limits)")


def change_limits(
    manager: JobManager, broker: Broker, *, limits: Limits, changed_by: str | None
) -> Limits:
    """Replace the limits, then release the waiting jobs that fit them now."""
    manager.set_limits(limits=limits, updated_by=changed_by)
    logger.info("admission limits changed by %s", changed_by or "an API client")
    release_waiting(manager, broker)
    return limits
