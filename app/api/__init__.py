"""All routers of the v1 API, wired in one place."""

from fastapi import APIRouter

from app.api import health, jobs, pipelines, workers

api_router = APIRouter(prefix="/api/v1")
api_router.include_router(jobs.router)
api_router.include_router(pipelines.router)
api_router.include_router(workers.router)
api_router.include_router(health.router)
