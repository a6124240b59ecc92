"""Emissions arithmetic over real intervals: time weighting, coverage, profiles."""

from __future__ import annotations

from datetime import timedelta

import pytest

from scheduler.domain import J_PER_KWH, ForecastUnavailable
from scheduler.planning.accounting import (
    covered_s,
    emissions_g,
    interval_intensity_g_per_kwh,
    profile_emissions_g,
)
from tests.fakes.planning import T0, series


def test_intensity_is_time_weighted_over_the_interval() -> None:
    hourly = series([100, 300], start=T0)
    start, end = T0 + timedelta(minutes=30), T0 + timedelta(minutes=90)
    assert interval_intensity_g_per_kwh(hourly, start, end) == pytest.approx(200.0)
    quarter = T0 + timedelta(minutes=45)
    assert interval_intensity_g_per_kwh(hourly, quarter, end) == pytest.approx(
        (15 * 100 + 30 * 300) / 45
    )


def test_uncovered_parts_are_left_out() -> None:
    hourly = series([100], start=T0)
    end = T0 + timedelta(hours=3)
    assert interval_intensity_g_per_kwh(hourly, T0, end) == pytest.approx(100.0)
    assert covered_s(hourly, T0, end) == pytest.approx(3600.0)


def test_zero_length_interval_takes_the_value_in_force() -> None:
    hourly = series([100, 300], start=T0)
    assert (
        interval_intensity_g_per_kwh(hourly, T0 + timedelta(hours=1), T0 + timedelta(hours=1))
        == 300.0
    )


def test_no_coverage_raises() -> None:
    hourly = series([100], start=T0)
    with pytest.raises(ForecastUnavailable):
        interval_intensity_g_per_kwh(hourly, T0 + timedelta(hours=2), T0 + timedelta(hours=3))
    with pytest.raises(ValueError, match="before it starts"):
        interval_intensity_g_per_kwh(hourly, T0 + timedelta(hours=1), T0)


def test_emissions_are_energy_times_pue_times_intensity() -> None:
    hourly = series([200, 400], start=T0)
    grams = emissions_g(1.5, 1.2, hourly, T0, T0 + timedelta(hours=2))
    assert grams == pytest.approx(1.5 * 1.2 * 300.0)


def test_profile_weights_each_interval_by_its_own_intensity() -> None:
    hourly = series([100, 500], start=T0)
    profile = [
        (T0, T0 + timedelta(hours=1), 2 * J_PER_KWH),
        (T0 + timedelta(hours=1), T0 + timedelta(hours=2), 1 * J_PER_KWH),
        (T0 + timedelta(hours=5), T0 + timedelta(hours=6), 0.0),
    ]
    assert profile_emissions_g(profile, 1.0, hourly) == pytest.approx(2 * 100 + 1 * 500)
