"""Window search for one job in one region: deadlines, run-now, ties, fractional slots."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.planning.window import (
    TIE_RTOL,
    best_start,
    best_window,
    candidate_starts,
    run_costs,
)
from tests.fakes.planning import T0, series


def brute_cost(intensity: list[float], start: float, duration: float) -> float:
    """Integrate a step function by slicing time into tiny pieces' exact overlaps."""
    total = 0.0
    for k, value in enumerate(intensity):
        overlap = min(k + 1, start + duration) - max(k, start)
        if overlap > 0:
            total += overlap * value
    return total


def test_cheapest_start_before_the_deadline() -> None:
    intensity = np.array([300, 100, 300, 300, 50, 300, 20, 300], dtype=float)
    choice = best_start(intensity, 3.0, 0.0, 5.0)
    # Starts 0..5: costs 700, 700, 650, 650, 370, 620 -> start 4 (50 + 300 + 20).
    assert choice.start_x == 4.0
    assert choice.cost == pytest.approx(370.0)
    assert choice.run_now_cost == pytest.approx(700.0)


def test_deadline_cuts_off_the_cheapest_window() -> None:
    intensity = np.array([300, 100, 300, 300, 50, 300, 20, 300], dtype=float)
    choice = best_start(intensity, 3.0, 0.0, 3.0)
    assert choice.start_x == 2.0  # 300 + 300 + 50 = 650 beats 700; start 4 is too late
    assert choice.cost == pytest.approx(650.0)


def test_fractional_last_slot_counts_its_fraction() -> None:
    intensity = np.array([100, 100, 1000, 10, 10, 1000], dtype=float)
    # 1.5 slots: from 0 costs 150; from 3 costs 10 + 0.5 * 10 = 15; from 1: 100 + 500.
    choice = best_start(intensity, 1.5, 0.0, 4.0)
    assert choice.start_x == 3.0
    assert choice.cost == pytest.approx(15.0)


def test_fractional_earliest_start_is_run_now() -> None:
    intensity = np.array([100, 200, 300], dtype=float)
    choice = best_start(intensity, 1.0, 0.25, 1.0)
    # Run-now from 0.25: 0.75 * 100 + 0.25 * 200 = 125; start 1 costs 200.
    assert choice.start_x == 0.25
    assert choice.run_now_cost == pytest.approx(125.0)


def test_ties_go_to_the_earliest_start() -> None:
    choice = best_start(np.full(48, 123.4), 5.0, 0.0, 40.0)
    assert choice.start_x == 0.0


def test_late_job_runs_now() -> None:
    choice = best_start(np.array([500.0, 1.0, 1.0]), 1.0, 0.0, -1.0)
    assert choice.start_x == 0.0


def test_unpriced_slots_are_never_planned_on() -> None:
    intensity = np.array([300.0, np.nan, 1.0, 1.0, 300.0])
    choice = best_start(intensity, 2.0, 0.0, 3.0)
    # Any run touching slot 1 is unpriced; from 2 costs 2.
    assert choice.start_x == 2.0
    assert choice.cost == pytest.approx(2.0)


def test_run_costs_mark_runs_past_the_end() -> None:
    costs = run_costs(np.array([1.0, 2.0, 3.0]), np.array([0.0, 1.5, 2.5]), 1.0)
    assert costs[0] == pytest.approx(1.0)
    assert costs[1] == pytest.approx(0.5 * 2 + 0.5 * 3)
    assert math.isnan(costs[2])


def test_candidate_starts_are_the_earliest_then_boundaries() -> None:
    assert candidate_starts(0.5, 3.2, 10.0).tolist() == [0.5, 1.0, 2.0, 3.0]
    assert candidate_starts(0.5, 0.7, 10.0).tolist() == [0.5]


def test_best_window_in_a_forecast() -> None:
    forecast = series([400, 350, 90, 80, 300, 400], start=T0)
    now = T0 + timedelta(minutes=10)
    window = best_window(forecast, now, 2 * 3600, 300)
    assert window == (T0 + timedelta(hours=2), T0 + timedelta(hours=4))


def test_best_window_respects_a_deadline() -> None:
    forecast = series([400, 350, 90, 80, 300, 400], start=T0)
    window = best_window(forecast, T0, 3600, 300, deadline=T0 + timedelta(hours=2))
    assert window == (T0 + timedelta(hours=1), T0 + timedelta(hours=2))


def test_best_window_none_when_the_forecast_is_over() -> None:
    forecast = series([400, 350], start=T0)
    assert best_window(forecast, T0 + timedelta(hours=3), 3600, 300) is None


def test_best_window_rejects_empty_windows() -> None:
    with pytest.raises(ValueError, match="window_s"):
        best_window(series([1.0]), T0, 0, 300)


@settings(max_examples=150, deadline=None)
@given(
    intensity=st.lists(st.floats(0, 1000, allow_nan=False), min_size=2, max_size=30),
    duration=st.floats(0.05, 8.0),
    earliest=st.floats(0.0, 3.0),
    slack=st.floats(-2.0, 25.0),
)
def test_window_search_properties(
    intensity: list[float],
    duration: float,
    earliest: float,
    slack: float,
) -> None:
    arr = np.array(intensity)
    latest = earliest + slack
    choice = best_start(arr, duration, earliest, latest)
    starts = candidate_starts(earliest, latest, len(arr) - duration)
    priced = [s for s in starts if s + duration <= len(arr) + 1e-9]
    if not priced:
        assert choice.start_x == earliest
        return
    # Deadline respected (or run-now when the job is already late).
    assert choice.start_x == earliest or choice.start_x <= latest + 1e-9
    assert choice.start_x >= earliest
    # Never worse than run-now, and the true minimum over the candidates.
    brute = [brute_cost(intensity, s, duration) for s in priced]
    best = min(brute)
    assert choice.cost == pytest.approx(best, rel=1e-6, abs=1e-6)
    if not math.isnan(choice.run_now_cost):
        assert choice.cost <= choice.run_now_cost + 1e-6
    # Ties go to the earliest start: every earlier start is strictly worse.
    margin = 0.5 * TIE_RTOL * max(1.0, abs(choice.cost))
    for start, cost in zip(priced, brute, strict=True):
        if start < choice.start_x - 1e-12:
            assert cost > choice.cost + margin


def test_aware_datetimes_only() -> None:
    with pytest.raises(ValueError, match="aware"):
        best_window(series([1.0, 2.0]), datetime(2023, 3, 1), 3600, 300)


def test_utc_grid_from_any_timezone() -> None:
    from zoneinfo import ZoneInfo

    forecast = series([400, 50, 400], start=T0)
    paris_now = T0.astimezone(ZoneInfo("Europe/Paris"))
    window = best_window(forecast, paris_now, 3600, 300)
    assert window is not None
    assert window[0].astimezone(UTC) == T0 + timedelta(hours=1)
