"""Plan stability: a job keeps its plan unless it became infeasible or its inputs changed."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scheduler.domain import Plan
from scheduler.planning.capacity import CapacityLedger
from scheduler.planning.cycle import plan_cycle, planning_inputs
from scheduler.planning.grid import BoolArray, FloatArray, IntArray
from scheduler.planning.snapshot import Decision, Occupancy, PlanningJob, Snapshot
from scheduler.planning.stability import CORE_NOTES, take_kept
from scheduler.planning.table import JobTable
from tests.fakes.planning import T0, job, series, snapshot, total_g
from tests.unit.test_placement import assert_within_capacity, snapshots


def _with_plans(snap: Snapshot, decision: Decision) -> Snapshot:
    """``snap`` with every job's current plan set to ``decision``'s."""
    return dataclasses.replace(
        snap,
        jobs=tuple(dataclasses.replace(j, current_plan=decision.plans[j.id]) for j in snap.jobs),
    )


def _keepable(plan: Plan) -> bool:
    return plan.note is None or not any(n in plan.note for n in CORE_NOTES)


def _assert_invariants(snap: Snapshot, decision: Decision) -> None:
    assert_within_capacity(snap, decision)
    for j in snap.jobs:
        plan = decision.plans[j.id]
        assert plan.start >= snap.now
        if j.deadline is not None and plan.end > j.deadline + timedelta(seconds=1):
            assert j.id in decision.late


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(snapshots())
def test_replanning_an_unchanged_snapshot_changes_no_plan(snap: Snapshot) -> None:
    first = plan_cycle(snap)
    again = _with_plans(snap, first)
    second = plan_cycle(again)
    _assert_invariants(again, second)
    assert len(second.late) <= len(first.late)
    if first.late:
        # Late jobs are placed again (as early as possible); when the kept plans stand in their
        # way, everything is placed again and plans may move: only the invariants hold then.
        return
    for j in snap.jobs:
        if _keepable(first.plans[j.id]):
            assert second.plans[j.id] == first.plans[j.id], j.id
    # Kept or placed again, the whole is no worse on the forecast it was planned on.
    assert total_g(second) <= total_g(first) * 1.02 + 1e-6


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(snapshots())
def test_a_later_cycle_with_an_arrival_keeps_the_invariants(snap: Snapshot) -> None:
    first = plan_cycle(snap)
    later = snap.now + timedelta(minutes=5)
    arrival = job("new", duration_h=2.0, deadline_h=8.0, now=later, home=snap.regions[0].name)
    moved = tuple(
        dataclasses.replace(j, earliest_start=max(j.earliest_start, later))
        for j in _with_plans(snap, first).jobs
    )
    nxt = dataclasses.replace(snap, now=later, jobs=(*moved, arrival))
    decision = plan_cycle(nxt)
    _assert_invariants(nxt, decision)
    for j in nxt.jobs:
        plan = decision.plans[j.id]
        if j.deadline is not None and j.id not in decision.late:
            assert plan.end <= j.deadline + timedelta(seconds=1)


PRICES = {"a": [300, 300, 100, 300, 300, 300, 300, 300], "b": [400] * 8}


def _planned(j: PlanningJob, snap: Snapshot) -> tuple[PlanningJob, Plan]:
    plan = plan_cycle(dataclasses.replace(snap, jobs=(j,))).plans[j.id]
    return dataclasses.replace(j, current_plan=plan), plan


def test_kept_plan_is_returned_as_is() -> None:
    snap = snapshot([], PRICES)
    kept, plan = _planned(job("j", duration_h=1, deadline_h=8, allowed=("a", "b")), snap)
    assert plan.start == T0 + timedelta(hours=2)
    assert plan_cycle(dataclasses.replace(snap, jobs=(kept,))).plans["j"] is plan


def test_plan_moves_when_its_region_goes_down() -> None:
    snap = snapshot([], PRICES)
    kept, plan = _planned(job("j", duration_h=1, deadline_h=8, allowed=("a", "b")), snap)
    assert plan.region == "a"
    down = dataclasses.replace(snap, jobs=(kept,), forecasts={"b": snap.forecasts["b"]})
    assert plan_cycle(down).plans["j"].region == "b"


def test_plan_moves_when_capacity_is_gone() -> None:
    snap = snapshot([], PRICES, gpus={"a": 1, "b": 1})
    kept, plan = _planned(job("j", duration_h=1, deadline_h=8, allowed=("a", "b")), snap)
    held = Occupancy(region="a", gpus=1, start=T0, end=T0 + timedelta(hours=4))
    busy = dataclasses.replace(snap, jobs=(kept,), occupancy=(held,))
    moved = plan_cycle(busy).plans["j"]
    assert (moved.region, moved.start) != (plan.region, plan.start)
    assert moved.region == "b" or moved.start >= T0 + timedelta(hours=4)


def test_plan_moves_when_its_start_is_past_the_deadline() -> None:
    snap = snapshot([], PRICES)
    kept, plan = _planned(job("j", duration_h=1, deadline_h=8, allowed=("a",)), snap)
    assert plan.end == T0 + timedelta(hours=3)  # past the tightened deadline below
    tighter = dataclasses.replace(kept, deadline=T0 + timedelta(hours=2))
    decision = plan_cycle(dataclasses.replace(snap, jobs=(tighter,)))
    assert decision.plans["j"].end <= T0 + timedelta(hours=2)
    assert decision.late == {}


def test_plan_moves_when_a_revised_forecast_makes_it_costlier() -> None:
    snap = snapshot([], PRICES)
    kept, plan = _planned(job("j", duration_h=1, deadline_h=8, allowed=("a",)), snap)
    assert plan.start == T0 + timedelta(hours=2)
    revised = [300, 300, 500, 300, 100, 300, 300, 300]
    issued = T0 + timedelta(minutes=10)
    nxt = dataclasses.replace(
        snap,
        jobs=(kept,),
        forecasts={"a": series(revised, zone="a", issued_at=issued), "b": snap.forecasts["b"]},
    )
    assert plan_cycle(nxt).plans["j"].start == T0 + timedelta(hours=4)


def test_plan_in_the_past_is_placed_again() -> None:
    snap = snapshot([], PRICES)
    kept, plan = _planned(job("j", duration_h=1, deadline_h=8, allowed=("a",)), snap)
    later = T0 + timedelta(hours=3)
    assert plan.start < later
    moved = dataclasses.replace(kept, earliest_start=later)
    decision = plan_cycle(dataclasses.replace(snap, now=later, jobs=(moved,)))
    assert decision.plans["j"].start >= later


def _take_one_by_one(
    table: JobTable, ledger: CapacityLedger, keep: BoolArray, row: IntArray, start_x: FloatArray
) -> BoolArray:
    """The reference: every kept job in turn, least slack first, taken when it fits."""
    out = keep.copy()
    for j in table.order().tolist():
        if not keep[j]:
            continue
        x, d, gpus = float(start_x[j]), float(table.d[j]), int(table.gpus[j])
        if ledger.fits(int(row[j]), x, d, gpus):
            ledger.take(int(row[j]), x, d, gpus)
        else:
            out[j] = False
    return out


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(snapshots(), st.integers(0, 2**32 - 1))
def test_take_kept_agrees_with_taking_jobs_one_by_one(snap: Snapshot, seed: int) -> None:
    table, _, base = planning_inputs(snap)
    rng = np.random.default_rng(seed)
    n, n_slots = len(table), base.n_slots
    keep = rng.random(n) < 0.8
    row = rng.integers(0, len(table.regions), n)
    room = np.maximum(n_slots - np.ceil(table.d) - 1, 0)
    # Starts on and between slot edges, so runs touching one more slot are drawn too.
    start_x = np.floor(rng.random(n) * (room + 1)) + rng.choice([0.0, 0.0, 0.4], n)
    start_x = np.minimum(start_x, np.maximum(n_slots - table.d, 0))
    fast, slow = base.copy(), base.copy()
    took = take_kept(table, fast, keep, row, start_x)
    assert (took == _take_one_by_one(table, slow, keep, row, start_x)).all()
    assert (fast.free == slow.free).all()
