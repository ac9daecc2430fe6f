"""Where the client finds its gateway: flags, then environment, then the config file.

Precedence, highest first: explicit arguments (CLI flags), `KEDRO_GATEWAY_URL` /
`KEDRO_GATEWAY_API_KEY`, the selected table of the config file, the defaults.

The config file is `$KEDRO_GATEWAY_CONFIG`, else `$XDG_CONFIG_HOME/kedro-gateway/config.toml`,
else `~/.config/kedro-gateway/config.toml`::

    [default]
    url = "http://127.0.0.1:8000"
    api_key = "..."

    [staging]
    url = "https://gateway.staging.example"
    api_key = "..."
    auth_scheme = "x-api-key"   # or "bearer" (the default)
    timeout = 30                # seconds per HTTP request

A profile is chosen with `profile=` (`--profile`) or `KEDRO_GATEWAY_PROFILE`; naming a
profile the file lacks is an error, while a missing `[default]` just means defaults.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from kedro_gateway_client._calls import DEFAULT_URL, AuthScheme
from kedro_gateway_client.errors import GatewayError

URL_ENV = "KEDRO_GATEWAY_URL"
API_KEY_ENV = "KEDRO_GATEWAY_API_KEY"
PROFILE_ENV = "KEDRO_GATEWAY_PROFILE"
CONFIG_ENV = "KEDRO_GATEWAY_CONFIG"
DEFAULT_PROFILE = "default"
DEFAULT_TIMEOUT = 30.0
_AUTH_SCHEMES = ("bearer", "x-api-key")


class ConfigError(GatewayError):
    """The configuration cannot be used (bad file, unknown profile, bad value)."""


@dataclass(frozen=True)
class ClientSettings:
    url: str = DEFAULT_URL
    api_key: str | None = None
    auth_scheme: AuthScheme = "bearer"
    timeout: float = DEFAULT_TIMEOUT
    profile: str = DEFAULT_PROFILE
    config_file: Path | None = None


def default_config_path(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    if env.get(CONFIG_ENV):
        return Path(env[CONFIG_ENV]).expanduser()
    base = Path(env["XDG_CONFIG_HOME"]) if env.get("XDG_CONFIG_HOME") else Path.home() / ".config"
    return base / "kedro-gateway" / "config.toml"


def load_profile(path: Path, profile: str, *, required: bool) -> dict[str, Any]:
    """The `[profile]` table of `path`; `{}` if absent and not `required`."""
    if not path.is_file():
        if required:
            raise ConfigError(f"config file {path} not found (needed for profile {profile!r})")
        return {}
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    table = document.get(profile)
    if table is None:
        if required:
            known = ", ".join(sorted(k for k, v in document.items() if isinstance(v, dict)))
            raise ConfigError(
                f"profile {profile!r} not found in {path} (profiles: {known or 'none'})"
            )
        return {}
    if not isinstance(table, dict):
        raise ConfigError(f"[{profile}] in {path} is not a table")
    return table


def resolve_settings(
    *,
    url: str | None = None,
    api_key: str | None = None,
    profile: str | None = None,
    config_file: str | Path | None = None,
    auth_scheme: str | None = None,
    timeout: float | None = None,
    environ: Mapping[str, str] | None = None,
) -> ClientSettings:
    """Settings from arguments, then environment, then config file, then defaults."""
    env = os.environ if environ is None else environ
    chosen_profile = profile or env.get(PROFILE_ENV) or None
    path = Path(config_file).expanduser() if config_file else default_config_path(env)
    if config_file is not None and not path.is_file():
        raise ConfigError(f"config file {path} not found")
    name = chosen_profile or DEFAULT_PROFILE
    table = load_profile(path, name, required=chosen_profile is not None)

    def pick(arg: Any, env_name: str | None, key: str) -> Any:
        if arg is not None:
            return arg
        if env_name and env.get(env_name):
            return env[env_name]
        return table.get(key)

    final_url = pick(url, URL_ENV, "url") or DEFAULT_URL
    final_key = pick(api_key, API_KEY_ENV, "api_key") or None
    scheme = pick(auth_scheme, None, "auth_scheme") or "bearer"
    raw_timeout = pick(timeout, None, "timeout")
    if not isinstance(final_url, str) or not final_url.startswith(("http://", "https://")):
        raise ConfigError(f"gateway URL must start with http:// or https://, not {final_url!r}")
    if final_key is not None and not isinstance(final_key, str):
        raise ConfigError(f"api_key in [{name}] of {path} must be a string")
    if scheme not in _AUTH_SCHEMES:
        raise ConfigError(f"auth_scheme must be one of {', '.join(_AUTH_SCHEMES)}, not {scheme!r}")
    try:
        final_timeout = DEFAULT_TIMEOUT if raw_timeout is None else float(raw_timeout)
    except (TypeError, ValueError):
        raise ConfigError(f"timeout must be a number of seconds, not {raw_timeout!r}") from None
    if final_timeout <= 0:
        raise ConfigError("timeout must be positive")
    return ClientSettings(
        url=final_url.rstrip("/"),
        api_key=final_key,
        auth_scheme=cast(AuthScheme, scheme),
        timeout=final_timeout,
        profile=name,
        config_file=path if path.is_file() else None,
    )
