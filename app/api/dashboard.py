"""The web dashboard: a static page at `/` that drives the public API from the browser.

Its scripts are ES modules loaded as they are (no build step); the graph layout library
is vendored under `dashboard/vendor/`.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException, status
from fastapi.responses import FileResponse

DASHBOARD_DIR = Path(__file__).resolve().parent.parent / "dashboard"
JAVASCRIPT = "text/javascript; charset=utf-8"
MODULES = (
    *("api", "dom", "graph", "job", "jobs", "main", "pipeline", "runlog", "timeline", "workers"),
)
ASSETS = {
    **{f"{module}.js": JAVASCRIPT for module in MODULES},
    "vendor/dagre.esm.js": JAVASCRIPT,
    "style.css": "text/css; charset=utf-8",
}
# Revalidate on every load (ETag), so a redeployed gateway never runs a stale script.
HEADERS = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
# The page loads only its own files and talks only to its own origin.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)

router = APIRouter(include_in_schema=False)


@router.get("/")
def index() -> FileResponse:
    """The dashboard page."""
    return FileResponse(
        DASHBOARD_DIR / "index.html",
        media_type="text/html; charset=utf-8",
        headers={**HEADERS, "Content-Security-Policy": CONTENT_SECURITY_POLICY},
    )


@router.get("/dashboard/{name:path}")
def asset(name: str) -> FileResponse:
    """One of the dashboard's own scripts or stylesheets (a fixed list, no paths)."""
    media_type = ASSETS.get(name)
    if media_type is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "Not Found")
    return FileResponse(DASHBOARD_DIR / name, media_type=media_type, headers=HEADERS)
