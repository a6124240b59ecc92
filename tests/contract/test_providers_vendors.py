"""Vendor-specific behaviour on top of the shared contract: WattTime's token flow, Electricity
Maps' past-range fallback, UK regions, Carbon Aware SDK response variants."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from scheduler.domain import ProviderError, SeriesKind
from scheduler.forecasts.carbonaware_sdk import CarbonAwareSdkClient, CarbonAwareSdkProvider
from scheduler.forecasts.electricitymaps import ElectricityMapsClient, ElectricityMapsProvider
from scheduler.forecasts.http import HttpSettings, ProviderAuthError
from scheduler.forecasts.ukgrid import UkGridClient, UkGridProvider
from scheduler.forecasts.watttime import (
    G_PER_KWH_PER_LBS_PER_MWH,
    WattTimeClient,
    WattTimeProvider,
)
from tests.fakes.provider_server import (
    CarbonAwareSdkFake,
    ElectricityMapsFake,
    ProviderServer,
    Reply,
    UkGridFake,
    WattTimeFake,
    load_sample,
    shift_times,
)

NOW = datetime(2025, 3, 14, 3, 40, tzinfo=UTC)
FAST = HttpSettings(
    connect_timeout_s=2.0, read_timeout_s=5.0, attempts=2, backoff_s=0.01, max_backoff_s=0.02
)


@pytest.fixture
def server() -> Iterator[ProviderServer]:
    with ProviderServer() as running:
        yield running


class FakeMonotonic:
    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s


# --- WattTime ---------------------------------------------------------------------------


def _watttime(
    fake: WattTimeFake, monotonic: FakeMonotonic | None = None, password: str = "the_frog"
) -> tuple[WattTimeProvider, WattTimeClient]:
    client = WattTimeClient(
        "freddo",
        password,
        fake.base_url,
        http_settings=FAST,
        monotonic=monotonic or FakeMonotonic(),
    )
    return WattTimeProvider(client), client


def test_watttime_token_is_cached_across_calls(server: ProviderServer) -> None:
    fake = WattTimeFake(server, NOW)
    provider, _ = _watttime(fake)

    for _ in range(3):
        provider.forecast(fake.zone, NOW)
    provider.actuals(fake.zone, NOW - timedelta(hours=1), NOW)

    assert fake.logins == 1
    assert len(server.requests_to(r"/v3/.*")) == 4


def test_watttime_token_is_renewed_on_401(server: ProviderServer) -> None:
    fake = WattTimeFake(server, NOW)
    provider, _ = _watttime(fake)
    provider.forecast(fake.zone, NOW)
    fake.expire_tokens()

    forecast = provider.forecast(fake.zone, NOW)

    assert forecast.points
    assert fake.logins == 2
    bearer = [r.headers["authorization"] for r in server.requests_to(fake.forecast_path)]
    assert bearer == ["Bearer token-1", "Bearer token-1", "Bearer token-2"]


def test_watttime_token_is_renewed_before_it_expires(server: ProviderServer) -> None:
    fake = WattTimeFake(server, NOW)
    monotonic = FakeMonotonic()
    provider, _ = _watttime(fake, monotonic)
    provider.forecast(fake.zone, NOW)
    monotonic.now_s += 29 * 60  # past the 30 min lifetime less the renewal margin

    provider.forecast(fake.zone, NOW)

    assert fake.logins == 2
    assert len(server.requests_to(fake.forecast_path)) == 2  # no 401 round trip was needed


def test_watttime_gateway_html_403_counts_as_expired_token(server: ProviderServer) -> None:
    fake = WattTimeFake(server, NOW)
    provider, _ = _watttime(fake)
    server.route(
        fake.forecast_path,
        Reply(403, "<html><h1>403 Forbidden</h1></html>", headers={"Content-Type": "text/html"}),
        Reply(body=fake.forecast),
    )

    forecast = provider.forecast(fake.zone, NOW)

    assert forecast.points
    assert fake.logins == 2


def test_watttime_wrong_password_is_not_retryable(server: ProviderServer) -> None:
    fake = WattTimeFake(server, NOW)
    provider, _ = _watttime(fake, password="wrong")

    with pytest.raises(ProviderAuthError) as caught:
        provider.forecast(fake.zone, NOW)

    assert not caught.value.retryable
    assert server.requests_to(fake.forecast_path) == []


def test_watttime_converts_lbs_per_mwh_and_marks_marginal(server: ProviderServer) -> None:
    fake = WattTimeFake(server, NOW)
    provider, _ = _watttime(fake)

    actuals = provider.actuals(fake.zone, NOW - timedelta(hours=1), NOW)

    assert [p.g_per_kwh for p in actuals.points] == pytest.approx(
        [870 * G_PER_KWH_PER_LBS_PER_MWH, 860 * G_PER_KWH_PER_LBS_PER_MWH]
    )
    assert actuals.signal.value == "marginal"


def test_watttime_rejects_units_it_cannot_convert(server: ProviderServer) -> None:
    fake = WattTimeFake(server, NOW)
    provider, _ = _watttime(fake)
    percentile = dict(fake.forecast, meta={**fake.forecast["meta"], "units": "percentile"})
    server.route(fake.forecast_path, Reply(body=percentile))

    with pytest.raises(ProviderError, match="percentile") as caught:
        provider.forecast(fake.zone, NOW)

    assert not caught.value.retryable


# --- Electricity Maps -------------------------------------------------------------------


def _em(fake: ElectricityMapsFake) -> ElectricityMapsProvider:
    return ElectricityMapsProvider(
        ElectricityMapsClient(fake.api_key, fake.base_url, http_settings=FAST)
    )


def test_electricitymaps_sends_auth_token_and_recent_actuals_use_history(
    server: ProviderServer,
) -> None:
    fake = ElectricityMapsFake(server, NOW)

    actuals = _em(fake).actuals(fake.zone, NOW - timedelta(hours=24), NOW)

    assert len(actuals.points) == 24
    assert actuals.points[-1].g_per_kwh == 689  # the recorded last hour
    assert server.requests_to(r"/v3/carbon-intensity/past-range") == []
    assert {r.headers["auth-token"] for r in server.requests} == {fake.api_key}


def test_electricitymaps_older_actuals_use_past_range(server: ProviderServer) -> None:
    fake = ElectricityMapsFake(server, NOW)
    start = NOW.replace(minute=0) - timedelta(hours=72)

    actuals = _em(fake).actuals(fake.zone, start, start + timedelta(hours=12))

    assert len(actuals.points) == 12
    assert actuals.points[0].valid_at == start
    past = server.requests_to(r"/v3/carbon-intensity/past-range")
    assert past
    assert past[0].param("start") == start.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_electricitymaps_body_for_another_zone_is_rejected(server: ProviderServer) -> None:
    fake = ElectricityMapsFake(server, NOW)
    server.route(fake.forecast_path, Reply(body=dict(fake.forecast, zone="FR")))

    with pytest.raises(ProviderError, match="'FR'"):
        _em(fake).forecast(fake.zone, NOW)


def test_electricitymaps_wrong_key_is_not_retryable(server: ProviderServer) -> None:
    fake = ElectricityMapsFake(server, NOW)
    provider = ElectricityMapsProvider(
        ElectricityMapsClient("bad-key", fake.base_url, http_settings=FAST)
    )

    with pytest.raises(ProviderAuthError) as caught:
        provider.forecast(fake.zone, NOW)

    assert caught.value.status == 401
    assert len(server.requests) == 1


def test_electricitymaps_latest(server: ProviderServer) -> None:
    fake = ElectricityMapsFake(server, NOW)
    latest = load_sample("electricitymaps_latest.json")
    server.route(r"/v3/carbon-intensity/latest", Reply(body=latest))

    point = _em(fake).latest("DE")

    assert point.g_per_kwh == 428
    assert point.valid_at == datetime(2024, 3, 1, 23, tzinfo=UTC)


# --- UK Carbon Intensity -----------------------------------------------------------------


def test_ukgrid_regional_forecast_and_estimates(server: ProviderServer) -> None:
    fake = UkGridFake(server, NOW)
    provider = UkGridProvider(UkGridClient(fake.base_url, http_settings=FAST))

    forecast = provider.forecast("GB-13", NOW)
    actuals = provider.actuals("GB-13", NOW - timedelta(hours=6), NOW)

    assert forecast.zone == "GB-13"
    assert forecast.points[0].g_per_kwh == 69
    assert forecast.resolution_s == 1800
    assert actuals.kind is SeriesKind.ACTUAL
    assert len(actuals.points) == 12
    paths = [r.path for r in server.requests]
    assert paths[0] == "/regional/intensity/2025-03-14T03:30Z/fw48h/regionid/13"
    assert paths[1] == "/regional/intensity/2025-03-13T21:30Z/2025-03-14T03:40Z/regionid/13"


def test_ukgrid_national_actuals_skip_open_half_hours(server: ProviderServer) -> None:
    fake = UkGridFake(server, NOW)
    provider = UkGridProvider(UkGridClient(fake.base_url, http_settings=FAST))

    actuals = provider.actuals("GB", NOW - timedelta(hours=24), NOW)

    # The recorded pt24h has 48 half-hours whose last "actual" is still null.
    assert len(actuals.points) == 47
    assert actuals.points[0].g_per_kwh == 64


@pytest.mark.parametrize("zone", ["GB-0", "GB-19", "GB-x", "UK", "gb"])
def test_ukgrid_unknown_zones_make_no_request(server: ProviderServer, zone: str) -> None:
    fake = UkGridFake(server, NOW)
    provider = UkGridProvider(UkGridClient(fake.base_url, http_settings=FAST))

    with pytest.raises(ProviderError, match="unknown zone") as caught:
        provider.forecast(zone, NOW)

    assert not caught.value.retryable
    assert server.requests == []


# --- Carbon Aware SDK --------------------------------------------------------------------


def test_carbonaware_sdk_accepts_a_single_object_from_bylocations(server: ProviderServer) -> None:
    fake = CarbonAwareSdkFake(server, NOW)
    single = load_sample("carbonaware_sdk_bylocation.json")[0]
    server.route(
        fake.actuals_path,
        Reply(
            body=shift_times(
                single, NOW - timedelta(minutes=10) - datetime(2022, 8, 23, 14, 30, tzinfo=UTC)
            )
        ),
    )
    provider = CarbonAwareSdkProvider(CarbonAwareSdkClient(fake.base_url, http_settings=FAST))

    actuals = provider.actuals(fake.zone, NOW - timedelta(hours=1), NOW)

    assert len(actuals.points) == 1
    assert actuals.points[0].g_per_kwh == pytest.approx(439.07741416000005)
    assert actuals.resolution_s == 300


def test_carbonaware_sdk_no_content_is_an_error(server: ProviderServer) -> None:
    fake = CarbonAwareSdkFake(server, NOW)
    server.route(fake.actuals_path, Reply(204))
    provider = CarbonAwareSdkProvider(CarbonAwareSdkClient(fake.base_url, http_settings=FAST))

    with pytest.raises(ProviderError, match="no data"):
        provider.actuals(fake.zone, NOW - timedelta(hours=1), NOW)


def test_carbonaware_sdk_not_implemented_is_not_retryable(server: ProviderServer) -> None:
    fake = CarbonAwareSdkFake(server, NOW)
    server.route(
        fake.forecast_path, Reply(501, {"title": "NotImplementedException", "status": 501})
    )
    provider = CarbonAwareSdkProvider(CarbonAwareSdkClient(fake.base_url, http_settings=FAST))

    with pytest.raises(ProviderError, match="501") as caught:
        provider.forecast(fake.zone, NOW)

    assert not caught.value.retryable
