"""Settings precedence: flags, then environment, then the config file, then defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from kedro_gateway_client.config import (
    ConfigError,
    default_config_path,
    resolve_settings,
)

CONFIG = """
[default]
url = "http://file-default:8000"
api_key = "file-default-key"

[staging]
url = "https://staging.example/"
api_key = "staging-key"
auth_scheme = "x-api-key"
timeout = 5
"""


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A clean environment whose config file is `<tmp>/kedro-gateway/config.toml`."""
    (tmp_path / "kedro-gateway").mkdir()
    (tmp_path / "kedro-gateway" / "config.toml").write_text(CONFIG)
    return {"XDG_CONFIG_HOME": str(tmp_path), "HOME": str(tmp_path / "home")}


def test_defaults_without_any_setting(tmp_path: Path) -> None:
    settings = resolve_settings(environ={"HOME": str(tmp_path)})
    assert settings.url == "http://127.0.0.1:8000"
    assert settings.api_key is None and settings.auth_scheme == "bearer"
    assert settings.config_file is None


def test_the_default_table_of_the_config_file(env: dict[str, str]) -> None:
    settings = resolve_settings(environ=env)
    assert settings.url == "http://file-default:8000"
    assert settings.api_key == "file-default-key"
    assert settings.profile == "default"


def test_environment_beats_the_file_and_flags_beat_both(env: dict[str, str]) -> None:
    env.update(KEDRO_GATEWAY_URL="http://from-env:1", KEDRO_GATEWAY_API_KEY="env-key")
    from_env = resolve_settings(environ=env)
    assert (from_env.url, from_env.api_key) == ("http://from-env:1", "env-key")
    from_flags = resolve_settings(url="http://flag:2", api_key="flag-key", environ=env)
    assert (from_flags.url, from_flags.api_key) == ("http://flag:2", "flag-key")


def test_a_profile_selects_another_table(env: dict[str, str]) -> None:
    staging = resolve_settings(profile="staging", environ=env)
    assert staging.url == "https://staging.example"  # trailing slash dropped
    assert staging.api_key == "staging-key"
    assert staging.auth_scheme == "x-api-key" and staging.timeout == 5
    by_env = resolve_settings(environ=dict(env, KEDRO_GATEWAY_PROFILE="staging"))
    assert by_env.url == "https://staging.example"
    # the environment still beats the profile's table
    mixed = resolve_settings(profile="staging", environ=dict(env, KEDRO_GATEWAY_API_KEY="k"))
    assert mixed.api_key == "k" and mixed.url == "https://staging.example"


def test_an_unknown_profile_or_missing_file_is_an_error(
    env: dict[str, str], tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match=r"profile 'prod' not found.*default, staging"):
        resolve_settings(profile="prod", environ=env)
    with pytest.raises(ConfigError, match="not found"):
        resolve_settings(config_file=tmp_path / "nope.toml", environ=env)
    with pytest.raises(ConfigError, match="not found"):
        resolve_settings(profile="staging", environ={"HOME": str(tmp_path / "nobody")})


def test_explicit_config_file_and_its_env_variable(tmp_path: Path) -> None:
    file = tmp_path / "other.toml"
    file.write_text('[default]\nurl = "http://other:3"\n')
    assert resolve_settings(config_file=file, environ={}).url == "http://other:3"
    env = {"KEDRO_GATEWAY_CONFIG": str(file)}
    assert default_config_path(env) == file
    assert resolve_settings(environ=env).url == "http://other:3"


def test_default_path_follows_xdg_then_home(tmp_path: Path) -> None:
    assert default_config_path({"XDG_CONFIG_HOME": "/x"}) == Path("/x/kedro-gateway/config.toml")
    home = default_config_path({})
    assert home.parts[-3:] == (".config", "kedro-gateway", "config.toml")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[default\n", "cannot read"),
        ('[default]\nurl = "ftp://x"\n', "http:// or https://"),
        ('[default]\nauth_scheme = "basic"\n', "auth_scheme"),
        ('[default]\ntimeout = "soon"\n', "timeout"),
        ("[default]\ntimeout = 0\n", "positive"),
        ("default = 1\n", "not a table"),
    ],
)
def test_bad_config_values(tmp_path: Path, content: str, message: str) -> None:
    file = tmp_path / "c.toml"
    file.write_text(content)
    with pytest.raises(ConfigError, match=message):
        resolve_settings(config_file=file, environ={})
