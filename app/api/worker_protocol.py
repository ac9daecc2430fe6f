"""The HTTP protocol each process of `API_WORKERS > 1` imports by name.

uvicorn starts those processes afresh and names the protocol class by import
string, so the request limits come from the settings the process reads itself.
"""

from __future__ import annotations

from app.api.server import LimitedHttpProtocol, limited_protocol
from app.core.config import get_settings


class EnvironmentLimitedProtocol(LimitedHttpProtocol):
    """`LimitedHttpProtocol` with this process's settings' limits."""

    limits = limited_protocol(get_settings()).limits
