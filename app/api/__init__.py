"""All routers of the v1 API, wired in one place.

With API keys configured, everything but the health probes needs a key.
"""

from fastapi import APIRouter, Depends

from app.api import (
    health,
    jobs,
    limits_admin,
    pipeline_stats,
    pipelines,
    reruns,
    webhooks,
    workers,
)
from app.api.deps import get_visibility
from app.api.errors import NEEDS_KEY

api_router = APIRouter(prefix="/api/v1")
_authenticated = [Depends(get_visibility)]
api_router.include_router(jobs.router, dependencies=_authenticated, responses=NEEDS_KEY)
api_router.include_router(reruns.router, dependencies=_authenticated, responses=NEEDS_KEY)
api_router.include_router(pipelines.router, dependencies=_authenticated, responses=NEEDS_KEY)
api_router.include_router(pipeline_stats.router, dependencies=_authenticated, responses=NEEDS_KEY)
api_router.include_router(workers.router, dependencies=_authenticated, responses=NEEDS_KEY)
api_router.include_router(webhooks.router, dependencies=_authenticated, responses=NEEDS_KEY)
api_router.include_router(webhooks.jobs_router, dependencies=_authenticated, responses=NEEDS_KEY)
api_router.include_router(limits_admin.router, dependencies=_authenticated, responses=NEEDS_KEY)
api_router.include_router(health.router)
