"""Cluster settings: a region's own Ray token comes from the variable it names, never the file;
the SQLite default lives in the per-user data directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from scheduler.bootstrap import region_tokens
from scheduler.config import load_settings
from scheduler.domain import ConfigError

REGION = {
    "name": "us-west",
    "grid_zone": "US-CAL-CISO",
    "gpus": 4,
    "ray_address": "http://ray-us:8265/",
    "ray_token_env": "RAY_US_TOKEN",
}


def test_region_tokens_by_address_from_the_named_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RAY_US_TOKEN", "secret-us")
    settings = load_settings(regions=[REGION, {"name": "eu", "grid_zone": "DE", "gpus": 1}])

    assert region_tokens(settings) == {"http://ray-us:8265": "secret-us"}


def test_a_missing_token_variable_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAY_US_TOKEN", raising=False)
    settings = load_settings(regions=[REGION])

    with pytest.raises(ConfigError, match="RAY_US_TOKEN"):
        region_tokens(settings)


def test_sqlite_default_is_in_the_xdg_data_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("GREENLIGHT_DATABASE_URL", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))

    settings = load_settings()

    assert settings.database_url == f"sqlite:///{tmp_path / 'greenlight' / 'greenlight.db'}"
    assert (tmp_path / "greenlight").is_dir()
