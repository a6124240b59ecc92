"""Forecast error by lead time, MAPE and staleness."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from scheduler.domain import Forecast, IntensityPoint, SeriesKind
from scheduler.forecasts.accuracy import forecast_error_by_lead, is_stale, mape_pct
from scheduler.planning.snapshot import LeadError

T0 = datetime(2025, 1, 1, tzinfo=UTC)
H = timedelta(hours=1)


def _series(
    kind: SeriesKind,
    issued_at: datetime,
    start: datetime,
    values: list[float],
    resolution_s: int = 3600,
) -> Forecast:
    step = timedelta(seconds=resolution_s)
    return Forecast(
        zone="Z",
        provider="p",
        kind=kind,
        issued_at=issued_at,
        resolution_s=resolution_s,
        points=tuple(
            IntensityPoint(valid_at=start + i * step, g_per_kwh=v) for i, v in enumerate(values)
        ),
    )


ACTUALS = _series(SeriesKind.ACTUAL, T0 + 48 * H, T0, [100.0] * 48)


def test_error_is_bucketed_by_lead_time() -> None:
    # Issued at T0: error 10 g one hour ahead or less, 40 g further out.
    forecast = _series(SeriesKind.FORECAST, T0, T0, [110.0, 110.0, 140.0, 140.0, 140.0])

    errors = forecast_error_by_lead([forecast], ACTUALS, lead_buckets_s=[3600, 4 * 3600])

    assert errors == [
        LeadError(lead_s=3600, mae_g_per_kwh=10.0),
        LeadError(lead_s=4 * 3600, mae_g_per_kwh=40.0),
    ]


def test_errors_pool_over_forecasts_and_skip_points_without_actuals() -> None:
    first = _series(SeriesKind.FORECAST, T0, T0, [90.0, 120.0])
    second = _series(SeriesKind.FORECAST, T0 + 10 * H, T0 + 10 * H, [100.0, 80.0])
    beyond = _series(SeriesKind.FORECAST, T0 + 47 * H, T0 + 47 * H, [500.0, 500.0, 500.0])

    errors = forecast_error_by_lead([first, second, beyond], ACTUALS, lead_buckets_s=[0, 3600])

    # lead 0: |90-100|, |100-100|, |500-100|; lead 1 h: |120-100|, |80-100| (beyond has no actual)
    assert [e.lead_s for e in errors] == [0, 3600]
    assert [e.mae_g_per_kwh for e in errors] == pytest.approx([410 / 3, 20.0])


def test_forecast_points_are_matched_to_coarser_actual_slots() -> None:
    forecast = _series(SeriesKind.FORECAST, T0, T0, [105.0] * 12, resolution_s=300)

    errors = forecast_error_by_lead([forecast], ACTUALS, lead_buckets_s=[3600])

    assert errors == [LeadError(lead_s=3600, mae_g_per_kwh=5.0)]


def test_empty_inputs_and_bad_buckets() -> None:
    empty = _series(SeriesKind.ACTUAL, T0, T0, [])
    assert forecast_error_by_lead([], ACTUALS) == []
    assert forecast_error_by_lead([_series(SeriesKind.FORECAST, T0, T0, [1.0])], empty) == []
    with pytest.raises(ValueError, match="ascending"):
        forecast_error_by_lead([], ACTUALS, lead_buckets_s=[7200, 3600])


def test_mape() -> None:
    forecast = _series(SeriesKind.FORECAST, T0, T0, [110.0, 80.0, 150.0])
    zero = _series(SeriesKind.ACTUAL, T0, T0, [0.0, 100.0, 100.0])

    assert mape_pct([forecast], ACTUALS) == pytest.approx((10 + 20 + 50) / 3)
    assert mape_pct([forecast], ACTUALS, max_lead_s=3600) == pytest.approx(15.0)
    assert mape_pct([forecast], zero) == pytest.approx(35.0)  # the 0 g/kWh actual is skipped
    assert mape_pct([], ACTUALS) is None


def test_staleness() -> None:
    forecast = _series(SeriesKind.FORECAST, T0, T0, [100.0] * 24)

    assert not is_stale(forecast, T0 + 3 * H, max_age_s=6 * 3600)
    assert is_stale(forecast, T0 + 7 * H, max_age_s=6 * 3600)
    assert is_stale(forecast, T0 + 24 * H, max_age_s=48 * 3600)  # every point has passed
    assert is_stale(_series(SeriesKind.FORECAST, T0, T0, []), T0, max_age_s=3600)
