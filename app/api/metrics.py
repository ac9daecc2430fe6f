"""Prometheus scrape endpoint (outside the /api/v1 prefix)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.api.deps import DetailsDep
from app.ops.metrics import pipeline_names_shown

router = APIRouter(tags=["metrics"])


@router.get("/metrics", response_class=Response)
def metrics(request: Request, details: DetailsDep) -> Response:
    """Jobs, queues, workers and HTTP metrics in Prometheus text format.

    With API keys on, a scrape without a key sees pipelines summed as `_all`."""
    token = pipeline_names_shown.set(details)
    try:
        text = generate_latest(request.app.state.registry)
    finally:
        pipeline_names_shown.reset(token)
    return Response(text, media_type=CONTENT_TYPE_LATEST)
