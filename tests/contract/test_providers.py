"""One contract suite for every HTTP carbon-intensity provider.

Each provider talks to a real HTTP server on loopback (tests/fakes/provider_server.py) that
replays the vendor's recorded response format, shifted to the test's clock, and is scripted to
fail in every way the issue lists.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from scheduler.domain import ProviderError, SeriesKind, Signal
from scheduler.domain.forecasts import MAX_PLAUSIBLE_G_PER_KWH, MIN_PLAUSIBLE_G_PER_KWH
from scheduler.forecasts.carbonaware_sdk import CarbonAwareSdkClient, CarbonAwareSdkProvider
from scheduler.forecasts.electricitymaps import ElectricityMapsClient, ElectricityMapsProvider
from scheduler.forecasts.http import HttpSettings
from scheduler.forecasts.ukgrid import UkGridClient, UkGridProvider
from scheduler.forecasts.watttime import WattTimeClient, WattTimeProvider
from scheduler.ports import ForecastProvider
from tests.fakes.provider_server import (
    CarbonAwareSdkFake,
    ElectricityMapsFake,
    ProviderServer,
    Reply,
    UkGridFake,
    VendorFake,
    WattTimeFake,
)

NOW = datetime(2025, 3, 14, 3, 40, tzinfo=UTC)
# One quick retry keeps fault tests fast while still exercising the retry path. Timeouts stay
# generous (a loaded CI machine must not turn successes into timeouts) except in the
# slow-response test, which uses SHORT_READ.
FAST = HttpSettings(
    connect_timeout_s=2.0, read_timeout_s=5.0, attempts=2, backoff_s=0.01, max_backoff_s=0.02
)
SHORT_READ = dataclasses.replace(FAST, read_timeout_s=0.2)


@dataclass(frozen=True)
class Vendor:
    name: str
    make_fake: Callable[[ProviderServer, datetime], VendorFake]
    build: Callable[[Any, str, HttpSettings], ForecastProvider]
    # Where the first forecast value lives in the vendor's body, and its list of points.
    points: Callable[[Any], list[dict[str, Any]]]
    value_path: tuple[str, ...]
    unknown_zone: str
    signal: Signal = Signal.AVERAGE
    value_scale: float = 1.0  # vendor units per g/kWh
    zone_checked_locally: bool = False


def _em(fake: Any, base_url: str, http: HttpSettings) -> ForecastProvider:
    return ElectricityMapsProvider(
        ElectricityMapsClient(fake.api_key, base_url, http_settings=http)
    )


def _wt(fake: Any, base_url: str, http: HttpSettings) -> ForecastProvider:
    return WattTimeProvider(WattTimeClient("freddo", "the_frog", base_url, http_settings=http))


def _uk(fake: Any, base_url: str, http: HttpSettings) -> ForecastProvider:
    return UkGridProvider(UkGridClient(base_url, http_settings=http))


def _casdk(fake: Any, base_url: str, http: HttpSettings) -> ForecastProvider:
    return CarbonAwareSdkProvider(CarbonAwareSdkClient(base_url, http_settings=http))


VENDORS = [
    Vendor(
        "electricitymaps",
        ElectricityMapsFake,
        _em,
        lambda b: b["forecast"],
        ("carbonIntensity",),
        unknown_zone="XX",
    ),
    Vendor(
        "watttime",
        WattTimeFake,
        _wt,
        lambda b: b["data"],
        ("value",),
        unknown_zone="NOWHERE",
        signal=Signal.MARGINAL,
        value_scale=1 / 0.453592,
    ),
    Vendor(
        "ukgrid",
        UkGridFake,
        _uk,
        lambda b: b["data"],
        ("intensity", "forecast"),
        unknown_zone="FR",
        zone_checked_locally=True,
    ),
    Vendor(
        "carbonaware_sdk",
        CarbonAwareSdkFake,
        _casdk,
        lambda b: b[0]["forecastData"],
        ("value",),
        unknown_zone="atlantis",
    ),
]


@dataclass
class Setup:
    vendor: Vendor
    server: ProviderServer
    fake: Any
    provider: ForecastProvider

    @property
    def zone(self) -> str:
        return str(self.fake.zone)

    def serve_forecast(self, *replies: Reply) -> None:
        self.server.route(self.fake.forecast_path, *replies)

    def edited_body(self, edit: Callable[[list[dict[str, Any]]], None]) -> Any:
        body = copy.deepcopy(self.fake.forecast_body())
        edit(self.vendor.points(body))
        return body

    def forecast_requests(self) -> int:
        return len(self.server.requests_to(self.fake.forecast_path))


@pytest.fixture(params=VENDORS, ids=lambda v: v.name)
def setup(request: pytest.FixtureRequest) -> Iterator[Setup]:
    vendor: Vendor = request.param
    with ProviderServer() as server:
        fake = vendor.make_fake(server, NOW)
        yield Setup(vendor, server, fake, vendor.build(fake, fake.base_url, FAST))


def _closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def _assert_valid(series: Any, kind: SeriesKind, zone: str, provider: str) -> None:
    assert series.kind is kind
    assert series.zone == zone
    assert series.provider == provider
    times = [p.valid_at for p in series.points]
    assert times == sorted(set(times)), "points must be sorted and unique"
    assert all(t.tzinfo is not None for t in times)
    for point in series.points:
        assert math.isfinite(point.g_per_kwh)
        assert MIN_PLAUSIBLE_G_PER_KWH <= point.g_per_kwh <= MAX_PLAUSIBLE_G_PER_KWH


# --- success ---------------------------------------------------------------------------


def test_forecast_is_converted_and_covers_now(setup: Setup) -> None:
    forecast = setup.provider.forecast(setup.zone, NOW)

    _assert_valid(forecast, SeriesKind.FORECAST, setup.zone, setup.vendor.name)
    assert forecast.signal is setup.vendor.signal
    assert forecast.resolution_s == setup.fake.resolution_s
    assert forecast.issued_at <= NOW
    first = forecast.points[0]
    assert first.valid_at <= NOW < first.valid_at + timedelta(seconds=forecast.resolution_s)
    assert first.g_per_kwh == pytest.approx(setup.fake.first_forecast_g_per_kwh)
    assert forecast.end is not None
    assert forecast.end - NOW >= timedelta(hours=6)


def test_forecast_is_trimmed_to_the_horizon(setup: Setup) -> None:
    provider: Any = setup.provider
    provider.horizon_s = 3 * 3600.0
    provider.min_horizon_s = 3600.0

    forecast = provider.forecast(setup.zone, NOW)

    step = timedelta(seconds=forecast.resolution_s)
    assert forecast.end is not None
    assert NOW + timedelta(hours=3) <= forecast.end <= NOW + timedelta(hours=3) + step
    assert forecast.points[0].valid_at + step > NOW


def test_actuals_cover_the_window(setup: Setup) -> None:
    start, end = NOW - timedelta(hours=24), NOW

    actuals = setup.provider.actuals(setup.zone, start, end)

    _assert_valid(actuals, SeriesKind.ACTUAL, setup.zone, setup.vendor.name)
    assert actuals.issued_at == end
    step = timedelta(seconds=actuals.resolution_s)
    assert all(p.valid_at + step > start and p.valid_at < end for p in actuals.points)


# --- transport faults -------------------------------------------------------------------


def test_connection_refused_is_retryable(setup: Setup) -> None:
    provider = setup.vendor.build(setup.fake, _closed_port_url(), FAST)

    with pytest.raises(ProviderError, match="unreachable") as caught:
        provider.forecast(setup.zone, NOW)

    assert caught.value.retryable
    assert caught.value.provider == setup.vendor.name


def test_server_going_down_after_success_is_retryable(setup: Setup) -> None:
    setup.provider.forecast(setup.zone, NOW)
    setup.server.stop()

    with pytest.raises(ProviderError) as caught:
        setup.provider.forecast(setup.zone, NOW)

    assert caught.value.retryable


def test_slow_response_times_out_after_each_attempt(setup: Setup) -> None:
    provider = setup.vendor.build(setup.fake, setup.fake.base_url, SHORT_READ)
    setup.serve_forecast(Reply(body=setup.fake.forecast_body(), delay_s=2.0))

    with pytest.raises(ProviderError, match="timed out") as caught:
        provider.forecast(setup.zone, NOW)

    assert caught.value.retryable
    assert setup.forecast_requests() == FAST.attempts


def test_server_error_is_retried_then_succeeds(setup: Setup) -> None:
    setup.serve_forecast(Reply(503, {"error": "busy"}), Reply(body=setup.fake.forecast_body()))

    forecast = setup.provider.forecast(setup.zone, NOW)

    assert forecast.points
    assert setup.forecast_requests() == 2


def test_persistent_server_error_is_retryable(setup: Setup) -> None:
    setup.serve_forecast(Reply(500, {"title": "Internal Server Error", "status": 500}))

    with pytest.raises(ProviderError, match="HTTP 500") as caught:
        setup.provider.forecast(setup.zone, NOW)

    assert caught.value.retryable
    assert setup.forecast_requests() == FAST.attempts


@pytest.mark.parametrize("status", [401, 403])
def test_refused_credentials_are_not_retryable(setup: Setup, status: int) -> None:
    setup.serve_forecast(Reply(status, {"error": "not allowed", "message": "denied"}))

    with pytest.raises(ProviderError, match=f"HTTP {status}") as caught:
        setup.provider.forecast(setup.zone, NOW)

    assert not caught.value.retryable


def test_rate_limit_carries_retry_after_and_is_not_retried_inline(setup: Setup) -> None:
    setup.serve_forecast(Reply(429, {"error": "slow down"}, headers={"Retry-After": "120"}))

    with pytest.raises(ProviderError, match="429") as caught:
        setup.provider.forecast(setup.zone, NOW)

    assert caught.value.retry_after_s == 120.0
    assert caught.value.retryable
    assert setup.forecast_requests() == 1


# --- garbage ----------------------------------------------------------------------------


def test_malformed_json_is_rejected(setup: Setup) -> None:
    setup.serve_forecast(Reply(body="<html><body>502 Bad Gateway</body></html>"))

    with pytest.raises(ProviderError, match="malformed JSON"):
        setup.provider.forecast(setup.zone, NOW)


def test_body_cut_short_by_the_connection_is_rejected(setup: Setup) -> None:
    full = json.dumps(setup.fake.forecast_body())
    setup.serve_forecast(Reply(body=full, truncate_at=len(full) // 2))

    with pytest.raises(ProviderError) as caught:
        setup.provider.forecast(setup.zone, NOW)

    assert caught.value.retryable


def test_truncated_json_document_is_rejected(setup: Setup) -> None:
    full = json.dumps(setup.fake.forecast_body())
    setup.serve_forecast(Reply(body=full[: len(full) // 2]))

    with pytest.raises(ProviderError, match="malformed JSON"):
        setup.provider.forecast(setup.zone, NOW)


def test_reshaped_body_is_rejected(setup: Setup) -> None:
    setup.serve_forecast(Reply(body={"unexpected": [1, 2, 3]}))

    with pytest.raises(ProviderError):
        setup.provider.forecast(setup.zone, NOW)


def test_unknown_zone_is_not_retryable(setup: Setup) -> None:
    with pytest.raises(ProviderError) as caught:
        setup.provider.forecast(setup.vendor.unknown_zone, NOW)

    assert not caught.value.retryable
    if setup.vendor.zone_checked_locally:
        assert setup.server.requests == []


@pytest.mark.parametrize("g_per_kwh", [-5.0, 1e6, math.nan, math.inf, "high", True])
def test_implausible_values_are_rejected(setup: Setup, g_per_kwh: Any) -> None:
    vendor = setup.vendor
    scaled = g_per_kwh * vendor.value_scale if isinstance(g_per_kwh, float) else g_per_kwh

    def corrupt(points: list[dict[str, Any]]) -> None:
        *parents, key = vendor.value_path
        target = points[3]
        for parent in parents:
            target = target[parent]
        target[key] = scaled

    setup.serve_forecast(Reply(body=setup.edited_body(corrupt)))

    with pytest.raises(ProviderError):
        setup.provider.forecast(setup.zone, NOW)


def test_forecast_shorter_than_required_is_rejected(setup: Setup) -> None:
    def shorten(points: list[dict[str, Any]]) -> None:
        del points[2:]

    setup.serve_forecast(Reply(body=setup.edited_body(shorten)))

    with pytest.raises(ProviderError, match="reaches"):
        setup.provider.forecast(setup.zone, NOW)


def test_forecast_that_ended_before_now_is_rejected(setup: Setup) -> None:
    setup.serve_forecast(Reply(body=setup.fake.forecast_body()))  # issued days before "now"

    with pytest.raises(ProviderError, match=r"reaches 0\.00 h"):
        setup.provider.forecast(setup.zone, NOW + timedelta(days=5))
