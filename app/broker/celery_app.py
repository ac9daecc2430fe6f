"""The Celery application shared by the worker and the API's publisher."""

from celery import Celery

from app.core.config import Settings

RUN_JOB_TASK = "gateway.run_job"
REFRESH_PIPELINES_TASK = "gateway.refresh_pipelines"


def create_celery(settings: Settings | None = None) -> Celery:
    """A Celery app configured from `celery_config`, with the broker of `settings` if given."""
    celery = Celery("kedro_gateway")
    celery.config_from_object("celery_config")
    if settings is not None and settings.celery_broker_url:
        celery.conf.broker_url = settings.celery_broker_url
    return celery


celery_app = create_celery()
