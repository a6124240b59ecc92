"""Each policy on small cases checked by hand.

One job of 3 h at 1 kW, deadline 10 h, hourly forecast for region "a" from 10:00 (slots of 1 h):

    hour   0    1    2    3    4    5    6    7 ...
    a     300  100  300  300   50  300   20  300 ...   (then 300)
    b     200 (flat)

Windows in "a": 0-3 = 700, 1-4 = 700, 2-5 = 650, 3-6 = 650, 4-7 = 370, 5-8 = 620, 6-9 = 620.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

import pytest

from scheduler.domain import Policy
from scheduler.planning.cycle import plan_cycle
from scheduler.planning.snapshot import LeadError, PlanningJob, Snapshot
from tests.fakes.planning import T0, job, series, snapshot

A = [300, 100, 300, 300, 50, 300, 20, 300, 300, 300, 300, 300]
B = [200] * 12


def _snap(policy: Policy, *, interruptible: bool = False, **kwargs: Any) -> Snapshot:
    jobs = [job("j", duration_h=3, deadline_h=10, policy=policy, interruptible=interruptible)]
    return snapshot(jobs, {"a": A, "b": B}, **kwargs)


def _windows(snap: Snapshot) -> list[tuple[float, float]]:
    plan = plan_cycle(snap).plans["j"]
    return [
        ((w.start - T0).total_seconds() / 3600, (w.end - T0).total_seconds() / 3600)
        for w in plan.windows
    ]


def test_now_runs_at_home_at_once() -> None:
    snap = _snap(Policy.NOW)
    plan = plan_cycle(snap).plans["j"]
    assert (plan.region, _windows(snap)) == ("a", [(0, 3)])
    assert plan.forecast_emissions_g == pytest.approx(700.0)
    assert plan.baseline_emissions_g == pytest.approx(700.0)


def test_lowest_window_shifts_in_time_at_home_only() -> None:
    snap = _snap(Policy.LOWEST_WINDOW)
    plan = plan_cycle(snap).plans["j"]
    assert plan.region == "a"  # b's 600 would be cheaper than 700 but is another region
    assert _windows(snap) == [(4, 7)]
    assert plan.forecast_emissions_g == pytest.approx(370.0)


def test_carbon_time_maximises_saving_per_completion_time() -> None:
    # Saving per hour of completion: 4-7 saves 330 over 7 h = 47.1; 2-5 saves 50 over 5 h.
    assert _windows(_snap(Policy.CARBON_TIME)) == [(4, 7)]


def test_carbon_time_prefers_an_earlier_smaller_saving_when_it_pays_per_hour() -> None:
    prices = {"a": [300, 300, 300, 140, 140, 140, 300, 300, 300, 0, 0, 0]}
    jobs = [job("j", duration_h=3, deadline_h=12, policy=Policy.CARBON_TIME)]
    # 3-6 saves 480 over 6 h (80/h); 9-12 saves 900 over 12 h (75/h): GAIA takes 3-6 while
    # the lowest window is 9-12.
    assert _windows(snapshot(jobs, prices)) == [(3, 6)]
    lowest = [dataclasses.replace(jobs[0], policy=Policy.LOWEST_WINDOW)]
    assert _windows(snapshot(lowest, prices)) == [(9, 12)]


def test_carbon_time_runs_now_when_nothing_saves() -> None:
    jobs = [job("j", duration_h=2, deadline_h=8, policy=Policy.CARBON_TIME)]
    assert _windows(snapshot(jobs, {"a": [100] * 2 + [500] * 10})) == [(0, 2)]


def test_wait_awhile_splits_interruptible_jobs_into_the_lowest_slots() -> None:
    snap = _snap(Policy.WAIT_AWHILE, interruptible=True)
    plan = plan_cycle(snap).plans["j"]
    assert _windows(snap) == [(1, 2), (4, 5), (6, 7)]
    assert plan.forecast_emissions_g == pytest.approx(100 + 50 + 20)


def test_wait_awhile_keeps_chunks_of_at_least_thirty_minutes() -> None:
    jobs = [job("j", duration_h=1, deadline_h=6, policy=Policy.WAIT_AWHILE, interruptible=True)]
    prices = {"a": [300, 10, 300, 300, 10, 300]}
    snap = snapshot(jobs, prices, step_s=600)
    for start, end in _windows(snap):
        assert end - start >= 0.5 - 1e-9


def test_wait_awhile_does_not_split_other_jobs() -> None:
    assert _windows(_snap(Policy.WAIT_AWHILE)) == [(4, 7)]


def test_greenlight_chooses_region_and_time() -> None:
    prices = {"a": A, "b": [200, 200, 200, 200, 40, 40, 40, 200, 200, 200, 200, 200]}
    jobs = [job("j", duration_h=3, deadline_h=10)]
    plan = plan_cycle(snapshot(jobs, prices)).plans["j"]
    assert plan.region == "b"
    assert plan.forecast_emissions_g == pytest.approx(120.0)
    assert plan.baseline_emissions_g == pytest.approx(700.0)


def test_greenlight_waits_only_when_the_gain_beats_the_forecast_error() -> None:
    prices = {"a": [300, 300, 280, 280, 300, 300, 300, 300]}
    jobs = [job("j", duration_h=2, deadline_h=8)]
    exact = snapshot(jobs, prices)
    assert plan_cycle(exact).plans["j"].start == T0 + timedelta(hours=2)
    # 2-4 is 40 g/kWh x h better than 0-2, but the forecast error grows by more between
    # them (mean absolute error 15 and 45 over 0-2, 60 and 60 over 2-4): run now.
    errors = {
        "a": (
            LeadError(lead_s=0, mae_g_per_kwh=0.0),
            LeadError(lead_s=2 * 3600, mae_g_per_kwh=60.0),
        )
    }
    noisy = snapshot(jobs, prices, forecast_error=errors)
    assert plan_cycle(noisy).plans["j"].start == T0
    # A gain well above the error still moves it.
    prices["a"][2:4] = [100, 100]
    assert plan_cycle(snapshot(jobs, prices, forecast_error=errors)).plans["j"].start == (
        T0 + timedelta(hours=2)
    )


def test_oracle_plans_on_actuals() -> None:
    snap = _snap(Policy.ORACLE)
    actual = {"a": series([10] + [300] * 11, zone="a"), "b": series(B, zone="b")}
    snap = dataclasses.replace(snap, actuals=actual)
    plan = plan_cycle(snap).plans["j"]
    # On actuals, a from 0 costs 10 + 300 + 300 = 610; b costs 600.
    assert (plan.region, _windows(snap)) == ("b", [(0, 3)])
    assert plan.forecast_emissions_g == pytest.approx(600.0)
    assert plan.baseline_emissions_g == pytest.approx(610.0)


def test_policies_share_capacity() -> None:
    jobs: list[PlanningJob] = [
        job("now", duration_h=3, deadline_h=10, policy=Policy.NOW),
        job("green", duration_h=3, deadline_h=3, policy=Policy.GREENLIGHT, allowed=("a",)),
    ]
    decision = plan_cycle(snapshot(jobs, {"a": A}, gpus={"a": 1}))
    # The tight greenlight job has least slack: it runs now; run-now queues behind it.
    assert decision.plans["green"].start == T0
    assert decision.plans["now"].start == T0 + timedelta(hours=3)
