"""The exact optimum on tiny instances, checked by brute force over every placement."""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scheduler.planning.cycle import plan_cycle
from scheduler.planning.optimum import (
    OPTIMUM_NOTE,
    lp_lower_bound_g,
    solve_offline,
    solve_snapshot,
)
from scheduler.planning.snapshot import PlanningJob, RegionState
from tests.fakes.planning import T0, job, series, snapshot, total_g


def brute_force_g(
    jobs: Sequence[PlanningJob], prices: Mapping[str, Sequence[float]], gpus: Mapping[str, int]
) -> float:
    """The lowest total emissions over every (region, whole-hour start) per job that meets
    every deadline and never holds more GPUs than a region has in any hour."""
    options = []
    for j in jobs:
        earliest = int((j.earliest_start - T0).total_seconds() // 3600)
        hours = j.duration_s / 3600
        assert j.deadline is not None
        latest = (j.deadline - T0).total_seconds() / 3600 - hours
        options.append(
            [
                (r, s)
                for r in prices
                for s in range(earliest, math.floor(latest) + 1)
                if s + math.ceil(hours) <= len(prices[r])
            ]
        )
    best = math.inf
    for choice in itertools.product(*options):
        held: dict[tuple[str, int], int] = {}
        total = 0.0
        for j, (region, start) in zip(jobs, choice, strict=True):
            hours = j.duration_s / 3600
            for k in range(start, start + math.ceil(hours)):
                held[(region, k)] = held.get((region, k), 0) + j.gpus
                part = min(1.0, start + hours - k)
                total += j.power_w / 1000 * part * prices[region][k]
        if all(n <= gpus[r] for (r, _), n in held.items()):
            best = min(best, total)
    return best


def test_optimum_beats_the_greedy_where_the_greedy_is_short_sighted() -> None:
    # The tight job takes a's cheap hour 1 first; the optimum gives it b's hour 1 (almost as
    # cheap) and keeps a's for the 4 kW job.
    prices = {"a": [500, 10, 500, 500], "b": [500, 20, 900, 900]}
    jobs = [
        job("small", duration_h=1, deadline_h=2, power_w=1000),
        job("big", duration_h=1, deadline_h=3, power_w=4000),
    ]
    snap = snapshot(jobs, prices, gpus={"a": 1, "b": 1}, budget_s=0.0)
    optimum = solve_snapshot(snap, time_limit_s=10)
    assert total_g(optimum) == pytest.approx(brute_force_g(jobs, prices, {"a": 1, "b": 1}))
    assert total_g(optimum) == pytest.approx(20 + 40)
    assert total_g(optimum) < total_g(plan_cycle(snap))
    assert all(
        p.note is not None and p.note.startswith(OPTIMUM_NOTE) for p in optimum.plans.values()
    )


@st.composite
def tiny(draw: st.DrawFn) -> tuple[list[PlanningJob], dict[str, list[float]], dict[str, int]]:
    hours = 6
    prices = {r: [float(draw(st.integers(10, 500))) for _ in range(hours)] for r in ("a", "b")}
    gpus = {"a": draw(st.integers(1, 2)), "b": draw(st.integers(1, 2))}
    jobs = []
    for i in range(draw(st.integers(1, 4))):
        duration = draw(st.sampled_from([0.5, 1.0, 2.0]))
        deadline = draw(st.integers(math.ceil(duration), hours))
        jobs.append(
            job(
                f"j{i}",
                duration_h=duration,
                deadline_h=deadline,
                power_w=float(draw(st.sampled_from([500, 1000, 3000]))),
                home=draw(st.sampled_from(["a", "b"])),
            )
        )
    return jobs, prices, gpus


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tiny())
def test_optimum_matches_brute_force(
    case: tuple[list[PlanningJob], dict[str, list[float]], dict[str, int]],
) -> None:
    jobs, prices, gpus = case
    best = brute_force_g(jobs, prices, gpus)
    optimum = solve_snapshot(snapshot(jobs, prices, gpus=gpus), time_limit_s=10)
    if math.isinf(best):
        assert optimum.late
        return
    assert optimum.late == {}
    assert total_g(optimum) == pytest.approx(best, rel=1e-6)
    # The LP relaxation is a lower bound on every feasible placement.
    bound = lp_lower_bound_g(snapshot(jobs, prices, gpus=gpus), time_limit_s=10)
    assert bound <= best * (1 + 1e-9) + 1e-9


def test_offline_optimum_uses_arrivals() -> None:
    prices = {"a": [400, 50, 400, 30, 400, 400]}
    early = job("early", duration_h=1, deadline_h=3)
    late = job("late", duration_h=1, deadline_h=5, earliest_h=2, submitted_h=2)
    decision = solve_offline(
        [early, late],
        [RegionState(name="a", gpus=1)],
        {"a": series(prices["a"], zone="a")},
        step_s=3600,
        time_limit_s=10,
    )
    assert decision.plans["early"].start == T0 + timedelta(hours=1)
    assert decision.plans["late"].start == T0 + timedelta(hours=3)
    assert total_g(decision) == pytest.approx(brute_force_g([early, late], prices, {"a": 1}))


def test_lp_bound_sits_below_the_optimum_and_a_met_bound_is_proven() -> None:
    # Two 2 h jobs, one GPU, cheap hours 1 and 3 only: they cannot both have two cheap hours.
    prices = {"a": [400, 10, 400, 10, 400]}
    jobs = [job(f"j{i}", duration_h=2, deadline_h=5) for i in range(2)]
    snap = snapshot(jobs, prices, gpus={"a": 1})
    optimum = solve_snapshot(snap, time_limit_s=10)
    best = brute_force_g(jobs, prices, {"a": 1})
    assert total_g(optimum) == pytest.approx(best)
    assert lp_lower_bound_g(snap, time_limit_s=10) <= best + 1e-9
    assert all(p.note == OPTIMUM_NOTE + ": proven optimal" for p in optimum.plans.values())
