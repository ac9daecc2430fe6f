"""Python client and command line for the Kedro job gateway."""

from __future__ import annotations

__version__ = "0.1.0"

from kedro_gateway_client._calls import Backoff, ServerFeatures
from kedro_gateway_client.aio import AsyncGatewayClient
from kedro_gateway_client.client import GatewayClient
from kedro_gateway_client.config import ClientSettings, ConfigError, resolve_settings
from kedro_gateway_client.errors import (
    BadRequest,
    Conflict,
    ConnectionFailed,
    Forbidden,
    GatewayError,
    NotFound,
    PayloadTooLarge,
    ServerError,
    ServerUnavailable,
    Unauthorized,
    UnsupportedByServer,
    ValidationFailed,
    WaitTimeout,
)
from kedro_gateway_client.models import (
    Health,
    HealthCheck,
    Job,
    JobCreate,
    JobEvent,
    JobEventList,
    JobList,
    JobStatus,
    Liveness,
    LogChunk,
    Pipeline,
    PipelineList,
    PipelineNode,
    Progress,
    RunOptions,
    Worker,
    WorkerList,
)

__all__ = [
    "AsyncGatewayClient",
    "Backoff",
    "BadRequest",
    "ClientSettings",
    "ConfigError",
    "Conflict",
    "ConnectionFailed",
    "Forbidden",
    "GatewayClient",
    "GatewayError",
    "Health",
    "HealthCheck",
    "Job",
    "JobCreate",
    "JobEvent",
    "JobEventList",
    "JobList",
    "JobStatus",
    "Liveness",
    "LogChunk",
    "NotFound",
    "PayloadTooLarge",
    "Pipeline",
    "PipelineList",
    "PipelineNode",
    "Progress",
    "RunOptions",
    "ServerError",
    "ServerFeatures",
    "ServerUnavailable",
    "Unauthorized",
    "UnsupportedByServer",
    "ValidationFailed",
    "WaitTimeout",
    "Worker",
    "WorkerList",
    "__version__",
    "resolve_settings",
]
