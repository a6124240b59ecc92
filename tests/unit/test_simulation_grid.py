"""Carbon series on the simulation grid, exact integrals, and the forecast models."""

from __future__ import annotations

import csv
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from scheduler.domain import Forecast, IntensityPoint, SeriesKind
from scheduler.forecasts.trace_files import load_carbon_trace, load_forecast_trace
from scheduler.simulation.forecasting import (
    MIN_HISTORY_STEPS,
    gaussian_forecast,
    issued_forecasts,
    perfect_forecast,
    series_forecast,
)
from scheduler.simulation.grid import Resample, build_grid, epoch_s, integrate
from tests.shared_data import SHARED_DATA, requires_shared_data

CARBON = SHARED_DATA / "carbon"
pytestmark = requires_shared_data
GB = CARBON / "lets-wait-awhile" / "gb_ci.csv"
VESSIM = CARBON / "vessim-watttime"
T0 = datetime(2022, 1, 1, tzinfo=UTC)


def _series(values: list[float], resolution_s: int, start: datetime = T0) -> Forecast:
    step = timedelta(seconds=resolution_s)
    return Forecast(
        zone="X",
        provider="test",
        kind=SeriesKind.ACTUAL,
        issued_at=start,
        resolution_s=resolution_s,
        points=tuple(
            IntensityPoint(valid_at=start + i * step, g_per_kwh=v) for i, v in enumerate(values)
        ),
    )


def test_mean_and_sample_resampling_by_hand() -> None:
    series = {"x": _series([100.0, 200.0, 300.0, 400.0], 900)}
    mean = build_grid(series, start=T0, end=T0 + timedelta(hours=1), step_s=1800)
    sample = build_grid(
        series, start=T0, end=T0 + timedelta(hours=1), step_s=1800, how=Resample.SAMPLE
    )
    assert mean.actuals["x"].tolist() == [150.0, 350.0]
    assert sample.actuals["x"].tolist() == [100.0, 300.0]


def test_grid_refuses_a_span_the_series_does_not_cover() -> None:
    with pytest.raises(ValueError, match="covers"):
        build_grid(
            {"x": _series([1.0, 2.0], 3600)}, start=T0, end=T0 + timedelta(hours=3), step_s=3600
        )


def test_integral_of_partial_steps() -> None:
    values = np.array([100.0, 300.0])
    start_s = epoch_s(T0)
    got = integrate(
        values, start_s, 3600, np.array([start_s + 1800.0]), np.array([start_s + 5400.0])
    )
    # Half an hour at 100 and half an hour at 300 g/kWh.
    assert got.tolist() == [1800 * 100.0 + 1800 * 300.0]


def test_gb_mixed_resolution_sampled_like_lets_wait_awhile() -> None:
    grid = build_grid(
        {"GB": load_carbon_trace(GB)},
        start=datetime(2020, 10, 30, tzinfo=UTC),
        end=datetime(2020, 11, 2, tzinfo=UTC),
        step_s=1800,
        how=Resample.SAMPLE,
    )
    with GB.open(newline="", encoding="utf-8") as handle:
        raw = {row["Time"]: float(row["Carbon Intensity"]) for row in csv.DictReader(handle)}
    expected = [
        raw[(datetime(2020, 10, 30) + timedelta(minutes=30 * i)).strftime("%Y-%m-%d %H:%M:%S")]
        for i in range(3 * 48)
    ]
    np.testing.assert_allclose(grid.actuals["GB"], expected)


def test_gaussian_forecast_draws_lets_wait_awhile_noise() -> None:
    actual = np.linspace(100.0, 300.0, 500)
    model = gaussian_forecast(actual, 0.05, np.random.default_rng(7))
    expected = actual + np.random.default_rng(7).normal(0, 0.05 * actual.mean(), size=500)
    np.testing.assert_allclose(model.window(0, 500)[1], expected)
    # The planner is told the known expected |error| = sigma x sqrt(2/pi), whenever it asks.
    for now_index in (3, 400):
        told = model.lead_errors(now_index)
        assert told
        expected_mae = 0.05 * 200.0 * math.sqrt(2 / math.pi)
        assert all(e.mae_g_per_kwh == pytest.approx(expected_mae) for e in told)


def test_series_forecast_error_is_measured_on_the_past_only() -> None:
    actual = np.linspace(100.0, 300.0, 100)
    forecast = actual + np.where(np.arange(100) < 50, 10.0, -30.0)
    model = series_forecast(actual, forecast)
    assert model.lead_errors(MIN_HISTORY_STEPS - 1) == ()
    assert model.lead_errors(50)[0].mae_g_per_kwh == pytest.approx(10.0)
    assert model.lead_errors(100)[0].mae_g_per_kwh == pytest.approx(20.0)


def test_perfect_forecast_reports_no_error() -> None:
    model = perfect_forecast(np.array([1.0, 2.0, 3.0]))
    assert model.window(1, 3)[1].tolist() == [2.0, 3.0]
    assert all(e.mae_g_per_kwh == 0.0 for e in model.lead_errors(0))


def test_issued_watttime_forecasts_on_the_grid(tmp_path: Path) -> None:
    start = datetime(2023, 6, 8, tzinfo=UTC)
    grid = build_grid(
        {"n": load_carbon_trace(VESSIM / "watttime2023_caiso-north_actual.csv")},
        start=start,
        end=start + timedelta(hours=6),
        step_s=300,
    )
    # The first ~5 hours of issues (13 points each), as a slice of the real file.
    source = VESSIM / "watttime2023_caiso-north_forecast.csv"
    head = source.read_text(encoding="utf-8").splitlines(keepends=True)[: 13 * 60 + 1]
    sliced = tmp_path / source.name
    sliced.write_text("".join(head), encoding="utf-8")
    issues = load_forecast_trace(sliced)
    model = issued_forecasts(grid.actuals["n"], issues, grid.start_s, 300)
    # At 01:00 the 01:00 issue is in force; its first point is 01:05 (lead 5 min).
    issue = next(f for f in issues if f.issued_at == start + timedelta(hours=1))
    first, window = model.window(12, 20)
    assert first == 13
    np.testing.assert_allclose(window, [p.g_per_kwh for p in issue.points[:7]])
    assert model.issued_index(12) == 12
    lead_5min = next(e for e in model.lead_errors(60) if e.lead_s == 300.0)
    errors = [
        abs(f.points[0].g_per_kwh - grid.actuals["n"][i + 1]) for i, f in enumerate(issues[:59])
    ]
    assert lead_5min.mae_g_per_kwh == pytest.approx(float(np.mean(errors)))
