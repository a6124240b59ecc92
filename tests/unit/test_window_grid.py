"""The planning grid: slot alignment, resampling of native series, gap filling."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from scheduler.domain import Forecast, IntensityPoint, SeriesKind
from scheduler.planning.grid import PlanningGrid, resample, slot_origin
from scheduler.planning.prices import build_price_book, fill_for_planning
from scheduler.planning.snapshot import LeadError, RegionState
from tests.fakes.planning import T0, series


def test_origin_is_now_floored_to_the_step() -> None:
    now = datetime(2023, 3, 1, 10, 7, 31, tzinfo=UTC)
    assert slot_origin(now, 300) == datetime(2023, 3, 1, 10, 5, tzinfo=UTC)
    assert slot_origin(now, 3600) == datetime(2023, 3, 1, 10, tzinfo=UTC)


def test_origin_needs_an_aware_now() -> None:
    with pytest.raises(ValueError, match="aware"):
        slot_origin(datetime(2023, 3, 1, 10), 300)


def test_hourly_points_fill_their_hour_of_five_minute_slots() -> None:
    grid = PlanningGrid(origin=T0, step_s=300, n_slots=36)
    values = resample(series([100, 200], start=T0), grid)
    assert values[:12].tolist() == [100.0] * 12
    assert values[12:24].tolist() == [200.0] * 12
    assert np.isnan(values[24:]).all()  # beyond the forecast's end: unpriced


def test_five_minute_points_average_into_hourly_slots() -> None:
    grid = PlanningGrid(origin=T0, step_s=3600, n_slots=1)
    values = resample(series(list(range(12)), start=T0, resolution_s=300), grid)
    assert values[0] == pytest.approx(5.5)


def test_gap_is_unpriced_and_partial_cover_is_its_mean() -> None:
    points = (
        IntensityPoint(valid_at=T0, g_per_kwh=100.0),
        IntensityPoint(valid_at=T0 + timedelta(hours=2), g_per_kwh=300.0),
    )
    gap = Forecast(
        zone="Z",
        provider="t",
        kind=SeriesKind.FORECAST,
        issued_at=T0,
        resolution_s=3600,
        points=points,
    )
    values = resample(gap, PlanningGrid(origin=T0, step_s=3600, n_slots=3))
    assert values[0] == 100.0
    assert math.isnan(values[1])
    assert values[2] == 300.0
    half = resample(gap, PlanningGrid(origin=T0 + timedelta(minutes=30), step_s=3600, n_slots=1))
    assert half[0] == 100.0  # covered half of the slot holds its own mean


def test_mixed_resolution_never_counts_an_instant_twice() -> None:
    points = (
        IntensityPoint(valid_at=T0, g_per_kwh=100.0),
        IntensityPoint(valid_at=T0 + timedelta(minutes=30), g_per_kwh=300.0),
    )
    mixed = Forecast(
        zone="Z",
        provider="t",
        kind=SeriesKind.FORECAST,
        issued_at=T0,
        resolution_s=3600,
        points=points,
    )
    values = resample(mixed, PlanningGrid(origin=T0, step_s=3600, n_slots=1))
    assert values[0] == pytest.approx(200.0)


def test_fill_interpolates_gaps_and_prices_the_tail_at_the_mean() -> None:
    raw = np.array([np.nan, 100.0, np.nan, 300.0, np.nan, np.nan])
    filled, start_end = fill_for_planning(raw)
    assert filled.tolist() == [100.0, 100.0, 200.0, 300.0, 200.0, 200.0]
    assert start_end == 4


def test_fill_of_nothing_is_unpriced() -> None:
    filled, start_end = fill_for_planning(np.full(3, np.nan))
    assert start_end == 0
    assert np.isnan(filled).all()


def test_price_book_costs_and_breaks() -> None:
    grid = PlanningGrid(origin=T0, step_s=1800, n_slots=6)
    book = build_price_book(
        grid,
        [RegionState(name="a", gpus=1), RegionState(name="b", gpus=1)],
        {"a": series([100, 200, 300], start=T0)},
    )
    assert book.priced.tolist() == [True, False]
    assert book.breaks.tolist() == [2, 4]
    cost = book.run_cost(np.array([0]), np.array([1.0, 1.5]), 2.0)
    assert cost[0].tolist() == pytest.approx([100 + 200, 0.5 * 100 + 200 + 0.5 * 200])


def test_error_margin_grows_with_lead_and_keeps_breaks() -> None:
    grid = PlanningGrid(origin=T0, step_s=1800, n_slots=6)
    book = build_price_book(
        grid, [RegionState(name="a", gpus=1)], {"a": series([100, 100, 100], start=T0)}
    )
    errors = {
        "a": (
            LeadError(lead_s=0, mae_g_per_kwh=0.0),
            LeadError(lead_s=4 * 3600, mae_g_per_kwh=40.0),
        )
    }
    robust = book.with_error_margin(errors, T0)
    margins = robust.values[0, :-1] - book.values[0, :-1]
    assert margins[0] < margins[2] < margins[4]
    assert margins[0] == margins[1]  # constant within an hour of the forecast
    assert robust.breaks.tolist() == book.breaks.tolist()
