"""Typed settings, read once from the environment (and `.env`).

Every component (API, worker, standalone launcher) builds its behaviour from one
`Settings` object; tests construct `Settings(...)` explicitly instead of
mutating `os.environ`.
"""

from __future__ import annotations

import os
import sys
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_PROJECT = REPO_ROOT / "examples" / "demo_project"
DEFAULT_QUEUE = "default"
RetryOn = Literal["worker_lost", "timeout", "failed"]


def _worker_lost_only() -> list[RetryOn]:
    return ["worker_lost"]


WarmShortcut = Literal["hooks", "git", "config", "imports", "pipelines", "prefork", "prefault"]
WARM_SHORTCUTS: tuple[WarmShortcut, ...] = (
    "hooks",
    "git",
    "config",
    "imports",
    "pipelines",
    "prefork",
    "prefault",
)


class Settings(BaseSettings):
    """Configuration names are a public contract (see README)."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    kedro_project_path: Path = EXAMPLE_PROJECT
    kedro_python: str = sys.executable
    kedro_env_passthrough: Annotated[list[str], NoDecode] = Field(default_factory=list)
    database_url: str = "sqlite:///./jobs.db"
    celery_broker_url: str | None = None
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    data_dir: Path = Path("./data")
    job_timeout_seconds: float | None = Field(default=None, gt=0)
    worker_lost_after_seconds: float = Field(default=60.0, gt=0)
    worker_stop_grace_seconds: float = Field(default=30.0, ge=0)
    api_stop_grace_seconds: float = Field(default=10.0, ge=0)
    worker_concurrency: int | None = Field(default=None, ge=1)
    log_max_bytes: int = Field(default=10 * 1024 * 1024, ge=4096)
    runner_mode: Literal["cold", "warm"] = "cold"
    warm_max_jobs: int = Field(default=200, ge=1)
    # Per-run work the warmed process does once (see app/runner/scripts/warm_server.py).
    warm_shortcuts: Annotated[list[WarmShortcut], NoDecode] = Field(
        default_factory=lambda: list(WARM_SHORTCUTS)
    )
    maintenance_interval_seconds: float = Field(default=2.0, gt=0)
    redispatch_after_seconds: float = Field(default=60.0, gt=0)
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = "text"
    api_keys: SecretStr | None = None
    admin_users: Annotated[list[str], NoDecode] = Field(default_factory=list)
    job_retention_days: float | None = Field(default=None, gt=0)
    allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    max_header_bytes: int = Field(default=32 * 1024, ge=1024)
    max_header_count: int = Field(default=100, ge=10)
    header_timeout_seconds: float = Field(default=10.0, gt=0)
    body_timeout_seconds: float = Field(default=30.0, gt=0)
    max_connections: int = Field(default=512, ge=1)
    api_workers: int = Field(default=1, ge=1, le=64)
    max_followers_per_user: int = Field(default=8, ge=1)
    public_details: bool = False
    webhook_secret: SecretStr | None = None
    webhook_allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    webhook_allow_http: bool = False
    webhook_max_age_seconds: float = Field(default=86400.0, gt=0)
    webhook_timeout_seconds: float = Field(default=10.0, gt=0, le=60)
    webhook_retry_base_seconds: float = Field(default=5.0, gt=0)
    webhook_retry_max_seconds: float = Field(default=3600.0, gt=0)
    # Initial admission limits, JSON in the shape of `GET /limits`; stored at start
    # unless limits are stored already (an admin's `PUT /limits` then wins).
    limits: str | None = None

    # Server-wide defaults of a job's `retry` policy (each field a job leaves out).
    retry_max_attempts: int = Field(default=1, ge=1, le=20)
    retry_on: Annotated[list[RetryOn], NoDecode] = Field(default_factory=_worker_lost_only)
    retry_delay_seconds: float = Field(default=10.0, ge=0, le=24 * 3600)
    retry_backoff: float = Field(default=2.0, ge=1, le=10)
    retry_strategy: Literal["from_failure", "all"] = "all"

    @field_validator(
        "kedro_env_passthrough",
        "admin_users",
        "allowed_hosts",
        "webhook_allowed_hosts",
        "retry_on",
        "warm_shortcuts",
        mode="before",
    )
    @classmethod
    def _split_names(cls, value: object) -> object:
        if isinstance(value, str):
            return [name.strip() for name in value.split(",") if name.strip()]
        return value

    @property
    def trusted_hosts(self) -> list[str]:
        """`ALLOWED_HOSTS`, or by default: any host with API keys on (a rebinding page has no
        key), else only the bind address and localhost (so DNS rebinding cannot reach it)."""
        if self.allowed_hosts:
            return self.allowed_hosts
        if self.api_keys is not None:
            return ["*"]
        return list(dict.fromkeys([self.host, "localhost", "127.0.0.1", "::1", "[::1]"]))

    @property
    def worker_lost_after(self) -> timedelta:
        return timedelta(seconds=self.worker_lost_after_seconds)

    @property
    def heartbeat_interval_seconds(self) -> float:
        """How often a run refreshes its heartbeat and looks for a cancel request."""
        return max(0.2, min(1.0, self.worker_lost_after_seconds / 4))


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment, `.env`, and the files
    `GATEWAY_ENV_FILE` names, `:`-separated (where secrets go to stay out of the process
    environment, which any process of the same user can read in /proc)."""
    named = os.environ.get("GATEWAY_ENV_FILE", "").split(os.pathsep)
    env_files = (".env", *(path for path in named if path))
    return Settings(_env_file=env_files)  # type: ignore[call-arg]
