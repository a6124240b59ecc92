"""Clearing a window for a late job (``scheduler.planning.clearing``): a long job arriving with
little slack into a region its kept plans fill takes a window, and only the jobs in that
window move, however many (more than the cheap repair's ``REPAIR_EJECT``)."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scheduler.planning.capacity import CapacityLedger, held, spans
from scheduler.planning.clearing import clear_for_late
from scheduler.planning.cycle import plan_cycle, planning_inputs
from scheduler.planning.deadlines import REPAIR_EJECT
from scheduler.planning.placement import Assignment
from scheduler.planning.snapshot import Snapshot
from tests.fakes.planning import T0, job, snapshot, usage_by_slot

# A clean first day, a dirty second: the queue packs the first day full.
PRICES = {"a": [100] * 24 + [400] * 24}
GPUS = 4


def _full_first_day() -> Snapshot:
    """96 one-hour, one-GPU jobs with two days of slack, planned: hours 0-23 are full."""
    queue = [job(f"q{i:02d}", duration_h=1, deadline_h=48, home="a") for i in range(96)]
    snap = snapshot(queue, PRICES, gpus={"a": GPUS})
    first = plan_cycle(snap)
    assert not first.late
    assert all(p.start < T0 + timedelta(hours=24) for p in first.plans.values())
    planned = tuple(dataclasses.replace(j, current_plan=first.plans[j.id]) for j in queue)
    return dataclasses.replace(snap, jobs=planned)


def test_a_long_urgent_arrival_moves_only_the_jobs_in_its_window() -> None:
    planned = _full_first_day()
    # Every GPU for 20 h, starting within the hour: 80 queued jobs stand in any window.
    urgent = job("urgent", duration_h=20, deadline_h=21, gpus=GPUS, home="a")
    snap = dataclasses.replace(planned, jobs=(*planned.jobs, urgent))
    decision = plan_cycle(snap)
    assert not decision.late
    plan = decision.plans["urgent"]
    assert plan.end <= T0 + timedelta(hours=21)
    for (region, slot), count in usage_by_slot(snap, decision).items():
        assert count <= GPUS, (region, slot)
    moved = [j.id for j in planned.jobs if decision.plans[j.id] is not j.current_plan]
    in_window = [
        j.id
        for j in planned.jobs
        if j.current_plan is not None
        and j.current_plan.start < plan.end
        and j.current_plan.end > plan.start
    ]
    assert len(in_window) > REPAIR_EJECT  # beyond the cheap repair
    assert sorted(moved) == sorted(in_window)  # those, and no other plan, moved
    for job_id in moved:
        assert decision.plans[job_id].start >= plan.end  # after it: they have the slack


@st.composite
def packed(draw: st.DrawFn) -> tuple[Snapshot, int]:
    """A day whose regions short jobs fill first-fit, and ``urgent`` long jobs with little
    slack (the last ones of the snapshot) that find no room."""
    names = ["a", "b"][: draw(st.integers(1, 2))]
    gpus = {n: draw(st.integers(2, 4)) for n in names}
    prices = {n: draw(st.lists(st.integers(50, 500), min_size=24, max_size=24)) for n in names}
    fillers = [
        job(
            f"f{i:02d}",
            duration_h=draw(st.sampled_from([1.0, 2.0, 3.0])),
            deadline_h=24,
            gpus=draw(st.integers(1, 2)),
            home=draw(st.sampled_from(names)),
        )
        for i in range(draw(st.integers(4, 30)))
    ]
    urgent = []
    for i in range(draw(st.integers(1, 3))):
        home = draw(st.sampled_from(names))
        hours = draw(st.sampled_from([4.0, 6.0, 10.0]))
        slack = draw(st.sampled_from([-1.0, 0.0, 1.0, 2.0]))  # -1: past its latest start
        need = draw(st.integers(1, gpus[home]))
        urgent.append(
            job(f"u{i}", duration_h=hours, deadline_h=hours + slack, gpus=need, home=home)
        )
    return snapshot([*fillers, *urgent], prices, gpus=gpus), len(urgent)


def _first_fit(free: np.ndarray, row: int, d: float, gpus: int) -> float | None:
    for x in range(free.shape[1] - int(np.ceil(d)) + 1):
        lo, hi = spans(np.array([float(x)]), np.array([d]), free.shape[1])
        if (free[row, lo[0] : hi[0]] >= gpus).all():
            return float(x)
    return None


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(packed())
def test_clearing_keeps_its_books_and_the_deadlines(case: tuple[Snapshot, int]) -> None:
    """From a packed assignment with urgent jobs late (held where they were put, over
    capacity), the ledger clearing leaves is capacity less exactly what the assignment holds,
    only the jobs it names moved, and each it placed and does not list late meets its
    deadline."""
    snap, n_urgent = case
    table, books, base = planning_inputs(snap)
    n = len(table)
    a = Assignment.empty(n)
    free = base.free.copy()
    for j in range(n):
        row = int(table.home[j])
        x = (
            0.0
            if j >= n - n_urgent
            else _first_fit(free, row, float(table.d[j]), int(table.gpus[j]))
        )
        if x is None:
            continue
        a.row[j], a.start_x[j], a.score[j] = row, x, 0.0
        lo, hi = spans(np.array([x]), table.d[j : j + 1], base.n_slots)
        free[row, lo[0] : hi[0]] -= int(table.gpus[j])
        if j >= n - n_urgent:
            a.late[j] = "late"
    ledger = CapacityLedger(free)
    before = {j: (int(a.row[j]), float(a.start_x[j])) for j in range(n)}
    changed = clear_for_late(table, books, a, ledger)
    if changed is None:
        return  # no window cleared: the caller drops ``a``
    ok = a.row >= 0
    lo, hi = spans(a.start_x[ok], table.d[ok], base.n_slots)
    assert (
        ledger.free == base.free - held(base.free.shape, a.row[ok], lo, hi, table.gpus[ok])
    ).all()
    moved = set(changed.tolist())
    for j in range(n):
        if j not in moved:
            assert (int(a.row[j]), float(a.start_x[j])) == before[j]
        elif j not in a.late:
            assert table.x_e[j] - 1e-9 <= a.start_x[j] <= table.x_l[j] + 1e-9
