"""Settings -> a concrete ForecastProvider for one region. Only ``scheduler.bootstrap`` calls it.

Credentials come from the environment variable the region's ``credentials_env`` names, never
from the configuration file: an Electricity Maps API key, or ``username:password`` for WattTime.
``base_url`` replaces the vendor's default URL prefix (tests, proxies, a self-hosted Carbon Aware
SDK WebAPI). HTTP providers are wrapped in a short-TTL :class:`CachingProvider`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import UTC, datetime

from scheduler.config import RegionSettings, Settings
from scheduler.domain import ConfigError, ProviderError
from scheduler.forecasts import carbonaware_sdk, electricitymaps, ukgrid, watttime
from scheduler.forecasts.cache import CachingProvider
from scheduler.forecasts.http import HttpSettings
from scheduler.forecasts.replay import BUNDLED_TRACES, ReplayProvider
from scheduler.ports import ForecastProvider

# Long enough to absorb bursts (API + refresher asking at once), short enough that a manual
# `forecast pull` soon gets fresh data.
DEFAULT_CACHE_TTL_S = 60.0


def build_provider(
    region: RegionSettings,
    settings: Settings,
    anchor: datetime,
    *,
    http_settings: HttpSettings | None = None,
    cache_ttl_s: float | None = DEFAULT_CACHE_TTL_S,
    environ: Mapping[str, str] | None = None,
) -> ForecastProvider:
    """The provider ``region`` names, configured from ``settings``.

    ``anchor`` is the scheduler time the replay provider maps onto ``settings.replay.trace_start``.
    ``cache_ttl_s=None`` disables the cache. Raises ConfigError for a missing credential, a
    malformed one, or a zone the provider cannot serve.
    """
    env = os.environ if environ is None else environ
    if region.provider == "replay":
        return _replay(region, settings, anchor)
    provider: ForecastProvider
    if region.provider == "electricitymaps":
        client = electricitymaps.ElectricityMapsClient(
            _credential(region, env),
            region.base_url or electricitymaps.DEFAULT_BASE_URL,
            http_settings=http_settings,
        )
        provider = electricitymaps.ElectricityMapsProvider(client)
    elif region.provider == "watttime":
        username, _, password = _credential(region, env).partition(":")
        if not username or not password:
            raise ConfigError(
                f"region {region.name!r}: ${region.credentials_env} must hold "
                "'username:password' for WattTime"
            )
        provider = watttime.WattTimeProvider(
            watttime.WattTimeClient(
                username,
                password,
                region.base_url or watttime.DEFAULT_BASE_URL,
                http_settings=http_settings,
            )
        )
    elif region.provider == "ukgrid":
        _check_uk_zone(region)
        provider = ukgrid.UkGridProvider(
            ukgrid.UkGridClient(
                region.base_url or ukgrid.DEFAULT_BASE_URL,
                http_settings=http_settings,
            )
        )
    else:
        provider = carbonaware_sdk.CarbonAwareSdkProvider(
            carbonaware_sdk.CarbonAwareSdkClient(
                region.base_url or carbonaware_sdk.DEFAULT_BASE_URL,
                http_settings=http_settings,
            )
        )
    return provider if cache_ttl_s is None else CachingProvider(provider, cache_ttl_s)


def _replay(region: RegionSettings, settings: Settings, anchor: datetime) -> ReplayProvider:
    if region.grid_zone not in BUNDLED_TRACES:
        raise ConfigError(
            f"region {region.name!r}: replay has no trace for zone "
            f"{region.grid_zone!r} (bundled: {', '.join(BUNDLED_TRACES)})"
        )
    try:
        trace_start = datetime.fromisoformat(settings.replay.trace_start)
    except ValueError as error:
        raise ConfigError(
            f"replay.trace_start {settings.replay.trace_start!r} is not ISO-8601"
        ) from error
    if trace_start.tzinfo is None:
        trace_start = trace_start.replace(tzinfo=UTC)
    return ReplayProvider(
        trace_start=trace_start,
        anchor=anchor,
        horizon_h=settings.replay.horizon_h,
        error_per_day=settings.replay.error_per_day,
        seed=settings.replay.seed,
    )


def _credential(region: RegionSettings, env: Mapping[str, str]) -> str:
    if not region.credentials_env:
        raise ConfigError(
            f"region {region.name!r}: provider {region.provider} needs "
            "credentials_env (the name of an environment variable)"
        )
    value = env.get(region.credentials_env, "").strip()
    if not value:
        raise ConfigError(
            f"region {region.name!r}: environment variable "
            f"{region.credentials_env} is unset or empty"
        )
    return value


def _check_uk_zone(region: RegionSettings) -> None:
    try:
        ukgrid.region_id(region.grid_zone)
    except ProviderError as error:
        raise ConfigError(f"region {region.name!r}: {error.message}") from error
