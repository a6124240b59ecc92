"""Greenlight's robustness to forecast error: prices smoothed where the error is measured."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from scheduler.domain import Policy
from scheduler.planning.cycle import plan_cycle
from scheduler.planning.grid import PlanningGrid
from scheduler.planning.prices import build_price_book
from scheduler.planning.snapshot import LeadError, RegionState
from tests.fakes.planning import T0, job, series, snapshot

# A lone dip at 02:00 and a wider, shallower low stretch at 05:00-08:00.
PRICES = [300, 300, 100, 300, 300, 150, 150, 150, 300, 300]
NO_MARGIN: dict[str, tuple[LeadError, ...]] = {"a": (LeadError(lead_s=0, mae_g_per_kwh=0.0),)}


def test_measured_error_smooths_each_block_with_its_neighbours() -> None:
    grid = PlanningGrid(origin=T0, step_s=1800, n_slots=8)
    book = build_price_book(
        grid, [RegionState(name="a", gpus=1)], {"a": series([100, 300, 100, 100], start=T0)}
    )
    robust = book.with_error_margin(NO_MARGIN, T0)
    # Hourly blocks, edges repeat themselves: (100+2*100+300)/4, (100+2*300+100)/4, ...
    expected = np.repeat([150.0, 200.0, 150.0, 100.0], 2)
    assert robust.values[0, :-1].tolist() == pytest.approx(expected.tolist())
    assert robust.breaks.tolist() == book.breaks.tolist()


def test_region_without_measured_error_keeps_its_prices() -> None:
    grid = PlanningGrid(origin=T0, step_s=3600, n_slots=4)
    regions = [RegionState(name="a", gpus=1), RegionState(name="b", gpus=1)]
    prices = {"a": series([100, 300, 100, 100]), "b": series([100, 300, 100, 100])}
    book = build_price_book(grid, regions, prices)
    robust = book.with_error_margin(NO_MARGIN, T0)
    assert robust.values[1].tolist() == book.values[1].tolist()
    assert robust.values[0].tolist() != book.values[0].tolist()


def test_greenlight_prefers_a_low_stretch_to_a_lone_dip_when_the_forecast_has_error() -> None:
    def start(policy: Policy, errors: dict[str, tuple[LeadError, ...]]) -> timedelta:
        jobs = [job("j", duration_h=1, deadline_h=10, policy=policy)]
        plan = plan_cycle(snapshot(jobs, {"a": PRICES}, forecast_error=errors)).plans["j"]
        return plan.start - T0

    # Exact forecast: the dip is cheapest for everyone.
    assert start(Policy.GREENLIGHT, {}) == timedelta(hours=2)
    # Measured error: the dip smooths to 200 and 06:00 stays at 150; wait-awhile, the
    # faithful reproduction, still takes the dip.
    assert start(Policy.GREENLIGHT, NO_MARGIN) == timedelta(hours=6)
    assert start(Policy.WAIT_AWHILE, NO_MARGIN) == timedelta(hours=2)
