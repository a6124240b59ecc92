"""Precedence in the pure planner: a child starts after its parents' planned end, across a chain,
even where the forecast would rather have it earlier; capacity still holds."""

from __future__ import annotations

from datetime import timedelta

from scheduler.planning.cycle import plan_cycle
from scheduler.planning.precedence import plan_in_levels
from tests.fakes.planning import T0, job, snapshot, usage_by_slot

# Cheapest now, dearer later: without precedence every job would start at once.
PRICES = {"a": [100, 100, 100, 400, 400, 400, 400, 400, 400, 400, 400, 400] * 4}


def test_a_chain_of_three_is_planned_in_order() -> None:
    jobs = [job(j, duration_h=2, deadline_h=24) for j in ("c", "b", "a")]
    snap = snapshot(jobs, PRICES)

    decision = plan_in_levels(snap, {"b": ("a",), "c": ("b",)}, plan_cycle)

    a, b, c = (decision.plans[j] for j in ("a", "b", "c"))
    assert a.start == T0
    assert b.start >= a.end
    assert c.start >= b.end
    free = plan_cycle(snap)
    assert {free.plans[j].start for j in ("a", "b", "c")} == {T0}  # what precedence changed


def test_levels_respect_capacity_and_skip_children_of_unplaced_parents() -> None:
    jobs = [
        job("p", duration_h=1, deadline_h=24, gpus=2),
        job("q", duration_h=1, deadline_h=24, gpus=2),
        job("child", duration_h=1, deadline_h=24, gpus=2),
        job("orphan", duration_h=1, deadline_h=24),
    ]
    snap = snapshot(jobs, PRICES, gpus={"a": 2})

    decision = plan_in_levels(snap, {"child": ("p",), "orphan": ("gone",)}, plan_cycle)

    assert decision.plans["child"].start >= decision.plans["p"].end
    assert "orphan" not in decision.plans  # its parent is not placeable now: it waits
    usage = usage_by_slot(snap, decision)
    assert max(usage.values()) <= 2


def test_a_cycle_of_parents_is_never_planned() -> None:
    jobs = [
        job("x", duration_h=1, deadline_h=24),
        job("y", duration_h=1, deadline_h=24),
        job("z", duration_h=1, deadline_h=24),
    ]
    snap = snapshot(jobs, PRICES)

    decision = plan_in_levels(snap, {"x": ("y",), "y": ("x",)}, plan_cycle)

    assert set(decision.plans) == {"z"}
    assert decision.plans["z"].start < T0 + timedelta(hours=1)
