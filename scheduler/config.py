"""Settings: ``configs/*.toml``, overridden by ``GREENLIGHT_*`` environment variables.

Nested keys use ``__`` in env vars (``GREENLIGHT_REPLAY__SPEED=600``). Secrets (provider keys,
tokens) come from the environment only; the TOML names the variable to read, never the value.
There is no module-level instance: call :func:`load_settings`.

The embedded default config is the repository's ``configs/default.toml``, which a wheel ships as
``scheduler/_configs/default.toml``. With no ``database_url`` configured, the database is
SQLite in the per-user data directory (``$XDG_DATA_HOME/greenlight/greenlight.db``, else
``~/.local/share/greenlight/greenlight.db``), so every command finds the same database whatever
its working directory.
"""

from __future__ import annotations

import contextvars
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from scheduler.domain.errors import ConfigError
from scheduler.reports.sci import CPU_CORE_EMBODIED_G_PER_HOUR, GPU_EMBODIED_G_PER_HOUR

# Lets load_settings name a file for one call without touching the process environment.
_CONFIG_PATH: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "greenlight_config_path", default=None
)
_PACKAGED_CONFIG = Path(__file__).resolve().parent / "_configs" / "default.toml"
_CHECKOUT_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "default.toml"
DEFAULT_CONFIG = _PACKAGED_CONFIG if _PACKAGED_CONFIG.is_file() else _CHECKOUT_CONFIG
DB_FILE_NAME = "greenlight.db"


def user_data_dir() -> Path:
    """Greenlight's per-user data directory (XDG base directory spec): ``$XDG_DATA_HOME``
    (when set to an absolute path) or ``~/.local/share``, then ``greenlight``."""
    xdg = os.environ.get("XDG_DATA_HOME", "")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".local" / "share"
    return base / "greenlight"


def default_database_url() -> str:
    """SQLite in :func:`user_data_dir`, which is created here if missing (a configured SQLite
    path must exist already: a typo there should fail, not make folders)."""
    folder = user_data_dir()
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / DB_FILE_NAME}"


ProviderName = Literal["replay", "electricitymaps", "watttime", "ukgrid", "carbonaware_sdk"]


class RegionSettings(BaseModel):
    """One region: a Ray cluster (or node group) on one grid zone, priced by one provider."""

    name: str
    grid_zone: str
    provider: ProviderName = "replay"
    gpus: int = Field(ge=0)
    pue: float = Field(default=1.2, ge=1.0, le=3.0)
    # The region's own Ray cluster (dashboard / Jobs URL) and the env var holding its token,
    # or a node group of the default cluster: nodes started with resources {node_label: N}.
    ray_address: str | None = None
    ray_token_env: str | None = None
    node_label: str | None = None
    base_url: str | None = None  # override the provider's URL (tests, proxies)
    refresh_interval_s: float = Field(default=900.0, gt=0)
    # Name of the env var holding this region's provider credential (never the value itself).
    credentials_env: str | None = None
    # SCI's M for hardware in this region, gCO2e per device-hour; unset: ``[embodied]``'s.
    embodied_gpu_g_per_hour: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    embodied_cpu_core_g_per_hour: float | None = Field(default=None, ge=0, allow_inf_nan=False)


class ReplaySettings(BaseModel):
    """The offline provider: real traces replayed against the scheduler's clock.

    Scheduler time t maps to trace time ``trace_start + (t - anchor) * 1`` where the anchor is
    the moment the service started; ``speed`` compresses the scheduler clock itself (see
    ``scheduler.clock.ScaledClock``) so a day of grid passes in minutes in the demo.
    """

    trace_start: str = "2023-03-01T00:00:00+00:00"
    speed: float = Field(default=1.0, gt=0)
    horizon_h: float = Field(default=48.0, gt=0)
    # Forecast error: sigma (as a share of the trace mean) grows linearly with lead time.
    error_per_day: float = Field(default=0.08, ge=0)
    seed: int = 0


class PowerSettings(BaseModel):
    """Per-device power used for planning and for flagged estimates where no meter exists."""

    gpu_w: float = Field(default=300.0, gt=0)
    cpu_core_w: float = Field(default=12.0, gt=0)
    base_w: float = Field(default=20.0, ge=0)
    # Draw of one powered but idle GPU: what each GPU left unpowered by packing shared
    # deployments saves (the savings report's packing credit). 60 W: data-centre GPUs of the
    # A100/H100 class idle at roughly 50-70 W as nvidia-smi reads them; set yours.
    idle_gpu_w: float = Field(default=60.0, ge=0)


class EmbodiedSettings(BaseModel):
    """SCI's embodied emissions (M) per device-hour of use, gCO2e, for every region without
    its own (``[embodied]``). Defaults and their source: ``scheduler.reports.sci``."""

    gpu_g_per_hour: float = Field(default=GPU_EMBODIED_G_PER_HOUR, ge=0, allow_inf_nan=False)
    cpu_core_g_per_hour: float = Field(
        default=CPU_CORE_EMBODIED_G_PER_HOUR, ge=0, allow_inf_nan=False
    )


class RelocationSettings(BaseModel):
    """When running deployments move to a greener region (``[relocation]``; README,
    "Deployments that follow the sun"). Times are scheduler seconds."""

    enabled: bool = True
    horizon_s: float = Field(default=8 * 3600.0, gt=0)
    threshold_g: float = Field(default=50.0, ge=0)
    threshold_pct: float = Field(default=5.0, ge=0)
    hysteresis: float = Field(default=0.25, ge=0)
    min_stay_s: float = Field(default=3 * 3600.0, ge=0)
    overlap_s: float = Field(default=600.0, ge=0)
    health_timeout_s: float = Field(default=600.0, gt=0)
    drain_s: float = Field(default=30.0, ge=0)
    health_path: str = Field(default="/healthz", pattern=r"^/[^\s?#]*$")
    health_check_timeout_s: float = Field(default=2.0, gt=0, le=60)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="GREENLIGHT_",
        env_nested_delimiter="__",
        extra="ignore",
    )

    # Empty: SQLite in the per-user data directory (see default_database_url).
    database_url: str = Field(default="", validate_default=True)
    api_host: str = "127.0.0.1"
    api_port: int = 8470
    # Where workers reach the API; defaults to http://api_host:api_port.
    api_url: str | None = None
    # Request bodies over this get 413 before any route parses them (a batch submit may be
    # larger: see scheduler.api.middleware).
    api_max_body_bytes: int = Field(default=1_048_576, ge=1024, le=1_073_741_824)
    # Threads that run the API's (synchronous) route handlers. Few: a request's own work is
    # Python that holds the GIL, and on a 2-core machine 32 clients' submits came back at
    # p99 ~200 ms with anyio's default 40 threads queueing for the GIL and ~105 ms with 4
    # (bench/api_load.py, issue 8). Raise it on a larger machine, or for many slow reports.
    api_threads: int = Field(default=4, ge=1, le=1000)
    # Threads for the routes that take seconds (savings report, dashboard, batch submit), apart
    # from the others so a few of them cannot hold every thread (scheduler.api.slow_lane).
    api_slow_threads: int = Field(default=2, ge=1, le=1000)
    ray_address: str | None = None  # None: start a local head on loopback
    ray_auth_mode: str = "disabled"
    # Where Ray Serve's proxies listen when Greenlight starts Serve on a cluster (a running
    # Serve keeps its own): Serve applications answer at http://<cluster host>:<port>/<run id>.
    serve_http_host: str = "0.0.0.0"
    serve_http_port: int = Field(default=8000, ge=1, le=65535)
    # Where workers keep checkpoints across attempts (interruptible jobs resume from them); on a
    # multi-node cluster this must be shared storage. Empty: a folder in the temp directory.
    checkpoint_dir: str = ""
    log_format: Literal["json", "text"] = "json"
    log_level: str = "INFO"

    plan_interval_s: float = Field(default=30.0, gt=0)
    dispatch_interval_s: float = Field(default=5.0, gt=0)
    reconcile_interval_s: float = Field(default=5.0, gt=0)
    refresh_interval_s: float = Field(default=900.0, gt=0)
    step_s: int = Field(default=300, gt=0)
    forecast_max_age_s: float = Field(default=6 * 3600.0, gt=0)
    forecast_retention_days: float = Field(default=30.0, gt=0)
    # Events of jobs finished longer ago than this are deleted (the job rows stay).
    event_retention_days: float = Field(default=90.0, gt=0)
    planning_budget_s: float = Field(default=0.3, gt=0)

    replay: ReplaySettings = ReplaySettings()
    power: PowerSettings = PowerSettings()
    relocation: RelocationSettings = RelocationSettings()
    embodied: EmbodiedSettings = EmbodiedSettings()
    regions: list[RegionSettings] = Field(default_factory=list)

    @field_validator("regions")
    @classmethod
    def _unique_regions(cls, regions: list[RegionSettings]) -> list[RegionSettings]:
        names = [r.name for r in regions]
        if len(set(names)) != len(names):
            raise ValueError(f"region names must be unique, got {names}")
        return regions

    @field_validator("database_url")
    @classmethod
    def _default_database(cls, url: str) -> str:
        return url.strip() or default_database_url()

    @model_validator(mode="after")
    def _need_regions(self) -> Settings:
        if not self.regions:
            raise ValueError("at least one [[regions]] entry is required")
        return self

    @property
    def effective_api_url(self) -> str:
        return self.api_url or f"http://{self.api_host}:{self.api_port}"

    def region(self, name: str) -> RegionSettings | None:
        return next((r for r in self.regions if r.name == name), None)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        path = Path(_CONFIG_PATH.get() or os.environ.get("GREENLIGHT_CONFIG") or DEFAULT_CONFIG)
        toml = TomlConfigSettingsSource(settings_cls, toml_file=path)
        return (init_settings, env_settings, toml)


def load_settings(path: str | Path | None = None, **overrides: Any) -> Settings:
    """Read settings from ``path`` (else ``$GREENLIGHT_CONFIG``, else the default config),
    then env vars, then ``overrides``. Raises pydantic.ValidationError on a bad config and
    ConfigError when ``path`` does not exist."""
    if path is not None and not Path(path).is_file():
        raise ConfigError(f"config file {path} not found")
    token = _CONFIG_PATH.set(str(path) if path is not None else None)
    try:
        return Settings(**overrides)
    finally:
        _CONFIG_PATH.reset(token)
