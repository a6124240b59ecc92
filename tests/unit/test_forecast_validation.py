"""Unit conversions, validation and trimming shared by every provider."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from scheduler.domain import ProviderError, SeriesKind
from scheduler.forecasts.carbonaware_sdk import timespan_s
from scheduler.forecasts.http import parse_retry_after
from scheduler.forecasts.ukgrid import floor_half_hour, region_id
from scheduler.forecasts.validation import (
    as_number,
    build_series,
    clamp_issued_at,
    parse_time,
    trim_actuals,
    trim_forecast,
)
from scheduler.forecasts.watttime import G_PER_KWH_PER_LBS_PER_MWH, lbs_per_mwh_to_g_per_kwh

T0 = datetime(2025, 1, 1, tzinfo=UTC)
H = timedelta(hours=1)


def _series(
    values: list[float], step: timedelta = H, start: datetime = T0
) -> list[tuple[datetime, float]]:
    return [(start + i * step, v) for i, v in enumerate(values)]


def _build(points: list[tuple[datetime, float]], resolution_s: float | None = None) -> object:
    return build_series(
        provider="p",
        zone="Z",
        kind=SeriesKind.FORECAST,
        issued_at=T0,
        points=points,
        resolution_s=resolution_s,
    )


def test_lbs_per_mwh_to_g_per_kwh() -> None:
    grams_per_lb, kwh_per_mwh = 453.59237, 1000.0
    assert pytest.approx(grams_per_lb / kwh_per_mwh, rel=1e-6) == G_PER_KWH_PER_LBS_PER_MWH
    assert lbs_per_mwh_to_g_per_kwh(1000.0) == pytest.approx(453.592)
    assert lbs_per_mwh_to_g_per_kwh(870.0) == pytest.approx(394.62504)
    assert lbs_per_mwh_to_g_per_kwh(0.0) == 0.0


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("00:05:00", 300.0),
        ("01:00:00", 3600.0),
        ("1.00:00:00", 86400.0),
        ("00:00:30.5000000", 30.0),
    ],
)
def test_dotnet_timespans(text: str, seconds: float) -> None:
    assert timespan_s(text) == seconds


@pytest.mark.parametrize("bad", ["5 minutes", "", 300, None])
def test_bad_timespans_are_provider_errors(bad: object) -> None:
    with pytest.raises(ProviderError):
        timespan_s(bad)


def test_series_are_sorted_deduplicated_and_resolution_inferred() -> None:
    points = [(T0 + 2 * H, 3.0), (T0, 1.0), (T0 + H, 2.0), (T0 + H, 2.5)]

    series = build_series(
        provider="p", zone="Z", kind=SeriesKind.ACTUAL, issued_at=T0, points=points
    )

    assert [p.valid_at for p in series.points] == [T0, T0 + H, T0 + 2 * H]
    assert [p.g_per_kwh for p in series.points] == [1.0, 2.5, 3.0]  # the last duplicate wins
    assert series.resolution_s == 3600


def test_stated_resolution_wins_and_single_points_default_to_an_hour() -> None:
    assert (
        build_series(
            provider="p",
            zone="Z",
            kind=SeriesKind.ACTUAL,
            issued_at=T0,
            points=_series([1.0, 2.0]),
            resolution_s=1800,
        ).resolution_s
        == 1800
    )
    assert (
        build_series(
            provider="p", zone="Z", kind=SeriesKind.ACTUAL, issued_at=T0, points=_series([1.0])
        ).resolution_s
        == 3600
    )


@pytest.mark.parametrize("value", [-0.1, 2000.1, math.inf, math.nan])
def test_implausible_values_are_rejected(value: float) -> None:
    with pytest.raises(ProviderError, match="implausible"):
        _build(_series([100.0, value]))


def test_empty_series_and_bad_resolution_are_rejected() -> None:
    with pytest.raises(ProviderError, match="no data"):
        _build([])
    with pytest.raises(ProviderError, match="data period"):
        _build(_series([1.0]), resolution_s=0)


@pytest.mark.parametrize("value", ["12", True, None, [1], math.nan])
def test_json_values_must_be_finite_numbers(value: object) -> None:
    with pytest.raises(ProviderError):
        as_number("p", value)


def test_timestamps_parse_every_vendor_style_to_utc() -> None:
    expected = datetime(2023, 3, 14, 3, 30, tzinfo=UTC)
    for text in (
        "2023-03-14T03:30Z",
        "2023-03-14T03:30:00.000Z",
        "2023-03-14T03:30:00+00:00",
        "2023-03-14T04:30:00+01:00",
        "2023-03-14T03:30:00",
    ):
        assert parse_time("p", text) == expected
    with pytest.raises(ProviderError):
        parse_time("p", "yesterday")
    with pytest.raises(ProviderError):
        parse_time("p", 1678764600)


def test_trim_forecast_keeps_the_current_slot_up_to_the_horizon() -> None:
    series = build_series(
        provider="p",
        zone="Z",
        kind=SeriesKind.FORECAST,
        issued_at=T0,
        points=_series([float(i) for i in range(48)]),
    )
    now = T0 + timedelta(hours=5, minutes=20)

    trimmed = trim_forecast(series, now, horizon_s=6 * 3600, min_horizon_s=3600)

    assert trimmed.points[0].valid_at == T0 + 5 * H
    assert trimmed.points[-1].valid_at == T0 + 11 * H
    assert trimmed.end == T0 + 12 * H


def test_trim_forecast_rejects_a_forecast_too_short_for_the_minimum() -> None:
    series = build_series(
        provider="p",
        zone="Z",
        kind=SeriesKind.FORECAST,
        issued_at=T0,
        points=_series([1.0, 2.0, 3.0]),
    )

    with pytest.raises(ProviderError, match=r"reaches 3.00 h .* need at least 6.00 h"):
        trim_forecast(series, T0, horizon_s=48 * 3600, min_horizon_s=6 * 3600)
    # A horizon shorter than the minimum lowers what is needed.
    assert len(trim_forecast(series, T0, horizon_s=2 * 3600, min_horizon_s=6 * 3600).points) == 2


def test_trim_actuals_keeps_slots_overlapping_the_window() -> None:
    series = build_series(
        provider="p",
        zone="Z",
        kind=SeriesKind.ACTUAL,
        issued_at=T0,
        points=_series([1.0, 2.0, 3.0, 4.0]),
    )

    kept = trim_actuals(series, T0 + timedelta(minutes=30), T0 + 2 * H)

    assert [p.g_per_kwh for p in kept.points] == [1.0, 2.0]
    with pytest.raises(ProviderError, match="no actuals"):
        trim_actuals(series, T0 + 10 * H, T0 + 11 * H)


def test_issue_time_is_never_after_now() -> None:
    assert clamp_issued_at(T0 + H, T0) == T0
    assert clamp_issued_at(T0 - H, T0) == T0 - H
    assert clamp_issued_at(None, T0) == T0


@pytest.mark.parametrize(
    ("value", "date", "expected"),
    [
        ("120", None, 120.0),
        (" 2.5 ", None, 2.5),
        ("-3", None, 0.0),
        ("Wed, 21 Oct 2015 07:28:00 GMT", "Wed, 21 Oct 2015 07:27:30 GMT", 30.0),
        ("Wed, 21 Oct 2015 07:28:00 GMT", "Wed, 21 Oct 2015 07:29:00 GMT", 0.0),
        ("soon", None, None),
        (None, None, None),
        ("", None, None),
    ],
)
def test_retry_after_parsing(value: str | None, date: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, date) == expected


def test_uk_zones_and_half_hours() -> None:
    assert region_id("GB") is None
    assert region_id("GB-13") == 13
    assert floor_half_hour(datetime(2025, 1, 1, 10, 59, 59, tzinfo=UTC)) == datetime(
        2025, 1, 1, 10, 30, tzinfo=UTC
    )
