"""Typed settings, read once from the environment (and `.env`).

Every component (API, worker, standalone launcher) builds its behaviour from one
`Settings` object; tests construct `Settings(...)` explicitly instead of
mutating `os.environ`.
"""

from __future__ import annotations

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
    worker_concurrency: int | None = Field(default=None, ge=1)
    log_max_bytes: int = Field(default=10 * 1024 * 1024, ge=4096)
    runner_mode: Literal["cold", "warm"] = "cold"
    warm_max_jobs: int = Field(default=200, ge=1)
    maintenance_interval_seconds: float = Field(default=2.0, gt=0)
    redispatch_after_seconds: float = Field(default=60.0, gt=0)
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = "text"
    api_keys: SecretStr | None = None
    admin_users: Annotated[list[str], NoDecode] = Field(default_factory=list)
    job_retention_days: float | None = Field(default=None, gt=0)
    # Initial admission limits, JSON in the shape of `GET /limits`; stored at start
    # unless limits are stored already (an admin's `PUT /limits` then wins).
    limits: str | None = None

    @field_validator("kedro_env_passthrough", "admin_users", mode="before")
    @classmethod
    def _split_names(cls, value: object) -> object:
        if isinstance(value, str):
            return [name.strip() for name in value.split(",") if name.strip()]
        return value

    @property
    def worker_lost_after(self) -> timedelta:
        return timedelta(seconds=self.worker_lost_after_seconds)

    @property
    def heartbeat_interval_seconds(self) -> float:
        """How often a run refreshes its heartbeat and looks for a cancel request."""
        return max(0.2, min(1.0, self.worker_lost_after_seconds / 4))


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read from the environment once."""
    return Settings()
