"""FastAPI's TestClient, imported without Starlette's httpx deprecation warning."""

import warnings

with warnings.catch_warnings():
    # Starlette asks for `httpx2`; the installed TestClient still works on httpx.
    warnings.filterwarnings("ignore", message="Using `httpx` with", category=UserWarning)
    from fastapi.testclient import TestClient

__all__ = ["TestClient"]
