"""The admission ledger against the full placement it stands in for (``check_submit``).

The ledger refuses only what every placement would make late, and admits into free capacity
only what fits beside the last plan; with nothing queued it agrees with the full placement
exactly. Hypothesis draws small instances: two regions of 1-3 GPUs, running jobs, a planned
queue, and one new job.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta

import numpy as np
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from scheduler.planning.cycle import plan_cycle
from scheduler.planning.feasibility import check_submit
from scheduler.planning.ledger import AdmissionLedger, Reservation, Verdict
from scheduler.planning.snapshot import Decision, Occupancy, PlanningJob, Snapshot
from tests.fakes.planning import T0, job, snapshot

REGIONS = ("a", "b")
HOURS = 48


@st.composite
def planning_jobs(draw: st.DrawFn, job_id: str) -> PlanningJob:
    duration_h = draw(st.integers(1, 4))
    return job(
        job_id,
        duration_h=duration_h,
        deadline_h=duration_h + draw(st.integers(0, 12)),
        gpus=draw(st.integers(0, 3)),
        home="a",
        allowed=draw(st.sampled_from([(), ("a",), ("a", "b")])),
    )


@st.composite
def instances(draw: st.DrawFn) -> tuple[Snapshot, PlanningJob]:
    now = T0 + timedelta(minutes=draw(st.integers(0, 59)))
    hourly = st.lists(st.floats(50, 500), min_size=HOURS, max_size=HOURS)
    prices = {r: draw(hourly) for r in REGIONS}
    gpus = {r: draw(st.integers(1, 3)) for r in REGIONS}
    running = tuple(
        Occupancy(
            region=draw(st.sampled_from(REGIONS)),
            gpus=draw(st.integers(1, 2)),
            start=T0,
            end=T0 + timedelta(hours=draw(st.integers(1, 10))),
        )
        for _ in range(draw(st.integers(0, 3)))
    )
    queued = [draw(planning_jobs(f"q{i}")) for i in range(draw(st.integers(0, 4)))]
    queued = [dataclasses.replace(j, earliest_start=now) for j in queued]
    new = dataclasses.replace(draw(planning_jobs("new")), earliest_start=now, submitted_at=now)
    snap = snapshot(queued, prices, gpus=gpus, now=now, occupancy=running, budget_s=0.0)
    return snap, new


def ledger_after(snap: Snapshot, decision: Decision) -> AdmissionLedger:
    gpus = {j.id: j.gpus for j in snap.jobs}
    planned = [
        Reservation(job_id=job_id, region=w.region, gpus=gpus[job_id], start=w.start, end=w.end)
        for job_id, plan in decision.plans.items()
        for w in plan.windows
    ]
    return AdmissionLedger.build(
        now=snap.now,
        step_s=snap.step_s,
        regions=snap.regions,
        occupancy=snap.occupancy,
        planned=planned,
        forecasts=snap.forecasts,
    )


def planned_queue(snap: Snapshot, decision: Decision) -> Snapshot:
    """The snapshot the next full check sees: every queued job with the plan it was given."""
    jobs = tuple(dataclasses.replace(j, current_plan=decision.plans[j.id]) for j in snap.jobs)
    return dataclasses.replace(snap, jobs=jobs)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instances())
def test_ledger_refusal_agrees_with_a_full_placement(case: tuple[Snapshot, PlanningJob]) -> None:
    snap, new = case
    decision = plan_cycle(snap)
    assume(not decision.late)  # a queue already late leaves no sound ledger to compare with
    verdict = ledger_after(snap, decision).check(new, snap.now)
    full = check_submit(planned_queue(snap, decision), new)
    if not verdict.admitted:
        assert full is not None, verdict.reason  # refusal is exact: no placement gets it in
    elif not verdict.overbooked:
        assert full is None, full  # fits beside the last plan: the full placement agrees
    if not snap.jobs:
        assert verdict.admitted == (full is None), (verdict, full)


@settings(max_examples=60, deadline=None)
@given(instances(), st.lists(st.integers(0, 3), min_size=1, max_size=6))
def test_admitted_windows_never_overbook_free_capacity(
    case: tuple[Snapshot, PlanningJob], gpus: list[int]
) -> None:
    snap, template = case
    ledger = AdmissionLedger.build(
        now=snap.now,
        step_s=snap.step_s,
        regions=snap.regions,
        occupancy=snap.occupancy,
        forecasts=snap.forecasts,
    )
    overbooked = bool((ledger.hard < 0).any())  # running jobs may overbook a region already
    for i, n in enumerate(gpus):
        verdict = ledger.admit(dataclasses.replace(template, id=f"n{i}", gpus=n), snap.now)
        overbooked = overbooked or verdict.overbooked
        if not overbooked:
            assert (ledger.free >= 0).all()
        if verdict.window is not None:
            assert verdict.window.end <= template.deadline  # type: ignore[operator]


PRICES = {"a": [300.0] * 3 + [100.0] * 3 + [300.0] * 42, "b": [400.0] * HOURS}


def build(gpus: dict[str, int], running: tuple[Occupancy, ...] = ()) -> AdmissionLedger:
    snap = snapshot([], PRICES, gpus=gpus, occupancy=running)
    return AdmissionLedger.build(
        now=snap.now,
        step_s=snap.step_s,
        regions=snap.regions,
        occupancy=running,
        forecasts=snap.forecasts,
    )


def test_admission_reserves_the_cheapest_window_and_the_next_job_sees_it() -> None:
    ledger = build({"a": 1, "b": 1})
    first = ledger.admit(job("j1", duration_h=2, deadline_h=10), T0)
    assert first.window is not None
    assert (first.window.region, first.window.start) == ("a", T0 + timedelta(hours=3))
    second = ledger.admit(job("j2", duration_h=2, deadline_h=10), T0)
    assert second.window is not None
    assert (second.window.region, second.window.start) == ("a", T0 + timedelta(hours=5))
    # a job only j1's slots could take is admitted, overbooked: the cycle may move j1
    tight = ledger.admit(job("j3", duration_h=4, deadline_h=5, allowed=("a",)), T0)
    assert isinstance(tight, Verdict)
    assert tight.admitted
    assert tight.overbooked
    assert int(ledger.free[0].min()) == -1


def test_refused_when_running_jobs_hold_every_gpu_until_past_the_deadline() -> None:
    running = (
        Occupancy(region="a", gpus=1, start=T0, end=T0 + timedelta(hours=6)),
        Occupancy(region="b", gpus=1, start=T0, end=T0 + timedelta(hours=6)),
    )
    ledger = build({"a": 1, "b": 1}, running)
    verdict = ledger.admit(job("j", duration_h=1, deadline_h=5), T0)
    assert not verdict.admitted
    assert verdict.reason is not None
    assert "capacity" in verdict.reason
    assert ledger.admit(job("k", duration_h=1, deadline_h=7), T0).admitted


def test_release_and_rebuild_keep_only_what_the_cycle_did_not_see() -> None:
    ledger = build({"a": 2, "b": 0})
    before = ledger.free.copy()
    ledger.admit(job("seen", duration_h=1, deadline_h=3), T0)
    ledger.admit(job("unseen", duration_h=1, deadline_h=3), T0)
    ledger.admit(job("gone", duration_h=1, deadline_h=3), T0)
    ledger.release("gone")
    assert int((before - ledger.free).sum()) == 2
    snap = snapshot([], PRICES, gpus={"a": 2, "b": 0})
    fresh = AdmissionLedger.build(
        now=T0, step_s=3600, regions=snap.regions, forecasts=snap.forecasts
    )
    fresh.carry_over(ledger, {"seen"})
    assert set(fresh.admitted) == {"unseen"}
    assert int((fresh.hard - fresh.free).sum()) == 1


def test_a_later_clock_only_considers_starts_from_now() -> None:
    ledger = build({"a": 1, "b": 0})
    later: datetime = T0 + timedelta(hours=5, minutes=30)
    verdict = ledger.admit(job("j", duration_h=1, deadline_h=8, now=later), later)
    assert verdict.window is not None
    assert verdict.window.start >= later
    assert np.isfinite(ledger.prices[0, :HOURS]).all()


@settings(max_examples=60, deadline=None)
@given(instances(), st.lists(st.sampled_from([0, 1, 2]), min_size=1, max_size=40))
def test_admitting_a_batch_equals_admitting_its_jobs_one_by_one(
    case: tuple[Snapshot, PlanningJob], shapes: list[int]
) -> None:
    snap, template = case
    batch = [
        dataclasses.replace(template, id=f"n{i}", gpus=1 + s % 2, duration_s=3600.0 * (1 + s))
        for i, s in enumerate(shapes)
    ]
    together, alone = (
        AdmissionLedger.build(
            now=snap.now,
            step_s=snap.step_s,
            regions=snap.regions,
            occupancy=snap.occupancy,
            forecasts=snap.forecasts,
        )
        for _ in range(2)
    )
    got = dict(zip([j.id for j in batch], together.admit_many(batch, snap.now), strict=True))
    order = sorted(
        batch, key=lambda j: [(j.gpus, j.duration_s) for j in batch].index((j.gpus, j.duration_s))
    )
    expected = {j.id: alone.admit(j, snap.now) for j in order}
    assert got == expected
    assert (together.free == alone.free).all()
