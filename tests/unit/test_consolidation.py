"""Deployments asking for a share of one GPU, through the whole planning cycle: packed onto the
fewest GPUs per region, never over capacity together with whole-GPU jobs, never a share placed
where it does not fit."""

from __future__ import annotations

import dataclasses
import math
from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scheduler.domain import JobKind
from scheduler.planning.consolidation import consolidate
from scheduler.planning.cycle import plan_cycle
from scheduler.planning.packing import gpus_needed
from scheduler.planning.snapshot import Decision, Occupancy, PlanningJob, Snapshot
from tests.fakes.planning import T0, job, snapshot, usage_by_slot

DAY_H = 24
# Shares that divide one another: first-fit decreasing packs them optimally.
DIVIDING = (0.5, 0.25, 0.125)
ANY_SHARE = st.integers(min_value=1, max_value=9_999).map(lambda u: u / 10_000)


def share(
    job_id: str, gpu_share: float, *, home: str = "a", allowed: tuple[str, ...] = ()
) -> PlanningJob:
    service = job(
        job_id, duration_h=DAY_H, deadline_h=None, kind=JobKind.DEPLOYMENT, gpus=0, home=home
    )
    return dataclasses.replace(service, gpu_share=gpu_share, allowed_regions=allowed)


def running_pool(region: str, shares: list[float]) -> Occupancy:
    return Occupancy(
        region=region,
        gpus=gpus_needed(shares),
        start=T0 - timedelta(hours=1),
        end=T0 + timedelta(hours=DAY_H),
        gpu_shares=tuple(shares),
    )


def shares_by_region(snap: Snapshot, decision: Decision) -> dict[str, list[float]]:
    """The shares each region holds after ``decision``: running pools and newly planned."""
    held: dict[str, list[float]] = {}
    for pool in snap.occupancy:
        held.setdefault(pool.region, []).extend(pool.gpu_shares)
    shares = {j.id: j.gpu_share for j in snap.jobs if j.gpu_share > 0}
    for job_id, plan in decision.plans.items():
        if job_id in shares:
            held.setdefault(plan.region, []).append(shares[job_id])
    return held


def assert_within_capacity(snap: Snapshot, decision: Decision) -> None:
    """Whole-GPU plans and running jobs, plus each region's packed shares, per slot. Late jobs
    (listed, planned as early as possible even with no room: the planner's rule) not counted."""
    decision = dataclasses.replace(
        decision, plans={i: p for i, p in decision.plans.items() if i not in decision.late}
    )
    whole = dataclasses.replace(
        snap, occupancy=tuple(o for o in snap.occupancy if not o.gpu_shares)
    )
    pooled = {r: gpus_needed(s) for r, s in shares_by_region(snap, decision).items()}
    capacity = {r.name: r.gpus for r in snap.regions}
    slots = {k for _, k in usage_by_slot(whole, decision) if k < DAY_H} | {0}  # pool: 24 h
    for region in capacity:
        for k in slots:
            used = usage_by_slot(whole, decision).get((region, k), 0) + pooled.get(region, 0)
            assert used <= capacity[region], f"{region} slot {k}: {used} > {capacity[region]}"


def test_four_quarter_shares_take_one_gpu() -> None:
    snap = snapshot([share(f"s{i}", 0.25) for i in range(4)], {"a": [100] * DAY_H}, gpus={"a": 1})
    decision = plan_cycle(snap)
    assert sorted(decision.plans) == ["s0", "s1", "s2", "s3"]
    assert {p.region for p in decision.plans.values()} == {"a"}
    packed, notes = consolidate(snap)
    assert notes == {}
    assert [(o.region, o.gpus) for o in packed.occupancy] == [("a", 1)]


def test_a_share_that_fits_nowhere_waits_with_a_note() -> None:
    jobs = [share("big0", 0.6), share("big1", 0.6), share("big2", 0.6)]
    decision = plan_cycle(snapshot(jobs, {"a": [100] * DAY_H}, gpus={"a": 2}))
    assert len(decision.plans) == 2
    (waiting,) = set(decision.notes) & {"big0", "big1", "big2"}
    assert waiting not in decision.plans
    assert "no allowed region has room for a 0.6 GPU share" in decision.notes[waiting]


def test_shares_go_to_the_cleaner_region_until_it_is_full() -> None:
    jobs = [share(f"s{i}", 0.5, allowed=("a", "b")) for i in range(3)]
    snap = snapshot(jobs, {"a": [100] * DAY_H, "b": [300] * DAY_H}, gpus={"a": 1, "b": 4})
    regions = sorted(p.region for p in plan_cycle(snap).plans.values())
    assert regions == ["a", "a", "b"]


def test_running_shares_are_filled_up_before_a_new_gpu() -> None:
    snap = snapshot(
        [share("new", 0.25)],
        {"a": [100] * DAY_H},
        gpus={"a": 1},
        occupancy=(running_pool("a", [0.5, 0.25]),),
    )
    assert plan_cycle(snap).plans["new"].region == "a"
    packed, _ = consolidate(snap)
    assert [(o.gpus, sorted(o.gpu_shares)) for o in packed.occupancy] == [(1, [0.25, 0.25, 0.5])]


def test_whole_gpu_jobs_plan_around_the_pool() -> None:
    train = job("train", duration_h=2, deadline_h=3, gpus=1)
    jobs = [share("s0", 0.5), share("s1", 0.5), train]
    snap = snapshot(jobs, {"a": [100] * DAY_H}, gpus={"a": 2})
    decision = plan_cycle(snap)
    assert set(decision.plans) == {"s0", "s1", "train"}
    assert_within_capacity(snap, decision)


def test_consolidation_is_idempotent() -> None:
    snap = snapshot(
        [share("s0", 0.3), share("s1", 0.3), job("t", duration_h=1, deadline_h=5)],
        {"a": [100] * DAY_H},
        gpus={"a": 3},
    )
    once, _ = consolidate(snap)
    twice, notes = consolidate(once)
    assert notes == {}
    assert twice == once


@st.composite
def snapshots(draw: st.DrawFn, shares: st.SearchStrategy[float] = ANY_SHARE) -> Snapshot:
    regions = ["a", "b", "c"][: draw(st.integers(1, 3))]
    prices = {r: [float(draw(st.integers(50, 500)))] * DAY_H for r in regions}
    capacity = {r: draw(st.integers(0, 4)) for r in regions}
    jobs: list[PlanningJob] = []
    for i in range(draw(st.integers(0, 14))):
        allowed = tuple(draw(st.lists(st.sampled_from(regions), max_size=2, unique=True)))
        home = allowed[0] if allowed else regions[0]
        jobs.append(share(f"s{i}", draw(shares), home=home, allowed=allowed))
    for i in range(draw(st.integers(0, 4))):
        jobs.append(
            job(f"t{i}", duration_h=draw(st.integers(1, 4)), deadline_h=None, home=regions[0])
        )
    pools = []
    for r in regions:
        running = draw(st.lists(shares, max_size=4))
        if running and gpus_needed(running) <= capacity[r]:
            pools.append(running_pool(r, running))
    return snapshot(jobs, prices, gpus=capacity, occupancy=tuple(pools))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(snapshots())
def test_never_over_capacity(snap: Snapshot) -> None:
    decision = plan_cycle(snap)
    assert_within_capacity(snap, decision)
    for j in snap.jobs:
        if j.gpu_share > 0:
            assert (j.id in decision.plans) != (j.id in decision.notes)
            if j.id in decision.plans and j.allowed_regions:
                assert decision.plans[j.id].region in j.allowed_regions


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(snapshots(st.sampled_from(DIVIDING)))
def test_dividing_shares_use_the_fewest_gpus(snap: Snapshot) -> None:
    decision = plan_cycle(snap)
    for region, held in shares_by_region(snap, decision).items():
        # The fewest GPUs any packing can use is the shares' sum, rounded up.
        assert gpus_needed(held) == math.ceil(sum(held) - 1e-9), region
