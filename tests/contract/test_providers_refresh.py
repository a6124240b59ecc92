"""The refresher against real providers on a real loopback server, including one that dies
in the middle of a refresh, and providers built by the factory from settings."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from scheduler.config import ProviderName, RegionSettings, Settings
from scheduler.domain import ConfigError, SeriesKind
from scheduler.forecasts.cache import CachingProvider
from scheduler.forecasts.electricitymaps import ElectricityMapsClient, ElectricityMapsProvider
from scheduler.forecasts.factory import build_provider
from scheduler.forecasts.http import HttpSettings
from scheduler.forecasts.memory_store import MemoryForecastStore
from scheduler.forecasts.refresh import ForecastRefresher, RefreshStatus
from scheduler.forecasts.replay import ReplayProvider
from scheduler.ports import ForecastProvider
from tests.fakes.clock import FakeClock
from tests.fakes.provider_server import (
    CarbonAwareSdkFake,
    ElectricityMapsFake,
    ProviderServer,
    Reply,
    Request,
    UkGridFake,
    VendorFake,
    WattTimeFake,
)

NOW = datetime(2025, 3, 14, 3, 40, tzinfo=UTC)
FAST = HttpSettings(
    connect_timeout_s=2.0, read_timeout_s=5.0, attempts=2, backoff_s=0.01, max_backoff_s=0.02
)


@pytest.fixture
def server() -> Iterator[ProviderServer]:
    with ProviderServer() as running:
        yield running


def _settings(regions: list[RegionSettings]) -> Settings:
    return Settings(regions=regions)


def test_factory_builds_each_provider_from_settings_and_env(server: ProviderServer) -> None:
    fakes: dict[ProviderName, VendorFake] = {
        "electricitymaps": ElectricityMapsFake(server, NOW),
        "watttime": WattTimeFake(server, NOW),
        "ukgrid": UkGridFake(server, NOW),
        "carbonaware_sdk": CarbonAwareSdkFake(server, NOW),
    }
    env = {"EM_KEY": "em-key", "WT_LOGIN": "freddo:the_frog"}
    regions = [
        RegionSettings(
            name=name,
            grid_zone=fake.zone,
            provider=name,
            gpus=1,
            base_url=fake.base_url,
            credentials_env={"electricitymaps": "EM_KEY", "watttime": "WT_LOGIN"}.get(name),
        )
        for name, fake in fakes.items()
    ]
    settings = _settings(regions)

    for region in regions:
        provider = build_provider(region, settings, NOW, http_settings=FAST, environ=env)
        forecast = provider.forecast(region.grid_zone, NOW)
        assert isinstance(provider, CachingProvider)
        assert provider.name == region.provider
        assert forecast.zone == region.grid_zone
        assert forecast.points[0].g_per_kwh == pytest.approx(
            fakes[region.provider].first_forecast_g_per_kwh
        )
    assert {r.path.split("/")[1] for r in server.requests} >= {
        "v3",
        "login",
        "intensity",
        "emissions",
    }


def test_factory_builds_replay_by_default() -> None:
    region = RegionSettings(name="eu", grid_zone="DE", gpus=1)
    settings = _settings([region])

    provider = build_provider(region, settings, NOW)

    assert isinstance(provider, ReplayProvider)
    assert provider.trace_time(NOW) == datetime(2023, 3, 1, tzinfo=UTC)
    assert provider.horizon_s == settings.replay.horizon_h * 3600


@pytest.mark.parametrize(
    ("region", "env", "message"),
    [
        (
            RegionSettings(name="r", grid_zone="DE", provider="electricitymaps", gpus=1),
            {},
            "credentials_env",
        ),
        (
            RegionSettings(
                name="r",
                grid_zone="DE",
                provider="electricitymaps",
                gpus=1,
                credentials_env="EM_KEY",
            ),
            {},
            "EM_KEY is unset",
        ),
        (
            RegionSettings(
                name="r", grid_zone="CAISO_NORTH", provider="watttime", gpus=1, credentials_env="WT"
            ),
            {"WT": "no-colon"},
            "username:password",
        ),
        (
            RegionSettings(name="r", grid_zone="London", provider="ukgrid", gpus=1),
            {},
            "unknown zone",
        ),
        (RegionSettings(name="r", grid_zone="FR", gpus=1), {}, "no trace"),
    ],
)
def test_factory_refuses_incomplete_configuration(
    region: RegionSettings,
    env: dict[str, str],
    message: str,
) -> None:
    with pytest.raises(ConfigError, match=message):
        build_provider(region, _settings([region]), NOW, environ=env)


def test_refresh_survives_a_provider_dying_mid_run(server: ProviderServer) -> None:
    fake = ElectricityMapsFake(server, NOW)
    served = 0
    lock = threading.Lock()

    def forecast_then_die(request: Request) -> Reply:
        nonlocal served
        with lock:
            served += 1
            if served <= 3:
                return Reply(body=dict(fake.forecast, zone=request.param("zone")))
        threading.Thread(target=server.stop).start()
        return Reply(drop=True)

    server.route(fake.forecast_path, forecast_then_die)
    zones = [f"Z{i}" for i in range(10)]
    providers: dict[str, tuple[ForecastProvider, str]] = {
        f"region-{zone}": (
            ElectricityMapsProvider(
                ElectricityMapsClient(fake.api_key, fake.base_url, http_settings=FAST)
            ),
            zone,
        )
        for zone in zones
    }
    store, clock = MemoryForecastStore(), FakeClock(NOW)
    refresher = ForecastRefresher(providers, store, clock, max_workers=4, rate_limits={})

    result = refresher.refresh()

    ok = result.with_status(RefreshStatus.OK)
    assert 1 <= len(ok) <= 3
    assert len(result.failed) == len(zones) - len(ok)
    for name, outcome in result.regions.items():
        stored = store.latest_forecast(outcome.zone, NOW)
        if name in ok:
            assert stored is not None
            assert stored.points[0].g_per_kwh == fake.first_forecast_g_per_kwh
        else:
            assert stored is None
            assert outcome.next_attempt_at is not None
            assert outcome.next_attempt_at > NOW

    clock.advance(3600)
    later = refresher.refresh(force=True)
    assert later.with_status(RefreshStatus.OK) == []
    assert all(
        store.latest_forecast(zone, clock.now()) is not None
        for zone in (result.regions[name].zone for name in ok)
    )


def test_refresh_of_every_vendor_through_the_server(server: ProviderServer) -> None:
    fakes: list[VendorFake] = [
        ElectricityMapsFake(server, NOW),
        WattTimeFake(server, NOW),
        UkGridFake(server, NOW),
        CarbonAwareSdkFake(server, NOW),
    ]
    env = {"EM_KEY": "em-key", "WT_LOGIN": "freddo:the_frog"}
    names: list[ProviderName] = ["electricitymaps", "watttime", "ukgrid", "carbonaware_sdk"]
    regions = [
        RegionSettings(
            name=n,
            grid_zone=f.zone,
            provider=n,
            gpus=1,
            base_url=f.base_url,
            credentials_env={"electricitymaps": "EM_KEY", "watttime": "WT_LOGIN"}.get(n),
        )
        for n, f in zip(names, fakes, strict=True)
    ]
    settings = _settings(regions)
    providers = {
        r.name: (build_provider(r, settings, NOW, http_settings=FAST, environ=env), r.grid_zone)
        for r in regions
    }
    store = MemoryForecastStore()

    result = ForecastRefresher(providers, store, FakeClock(NOW)).refresh()

    assert result.with_status(RefreshStatus.OK) == sorted(names)
    for region in regions:
        assert store.latest_forecast(region.grid_zone, NOW) is not None
        actual = store.latest_forecast(region.grid_zone, NOW, SeriesKind.ACTUAL)
        assert actual is not None
        assert actual.points[-1].valid_at < NOW
        assert actual.points[0].valid_at >= NOW - timedelta(hours=25)
