"""Submit-time admission: a job is refused when it cannot meet its deadline."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from scheduler.domain import JobKind
from scheduler.planning.feasibility import check_submit
from scheduler.planning.snapshot import Occupancy
from tests.fakes.planning import T0, job, snapshot

PRICES = {"a": [100.0] * 12, "b": [200.0] * 12}


def test_fits_is_accepted() -> None:
    new = job("new", duration_h=2, deadline_h=4)
    assert check_submit(snapshot([new], PRICES, gpus={"a": 1, "b": 1}), new) is None


def test_more_gpus_than_any_allowed_region_is_refused() -> None:
    new = job("new", duration_h=1, deadline_h=4, gpus=3, allowed=("a",))
    reason = check_submit(snapshot([], PRICES, gpus={"a": 2, "b": 8}), new)
    assert reason is not None
    assert "3 GPUs" in reason


def test_deadline_before_the_earliest_end_is_refused() -> None:
    new = job("new", duration_h=3, deadline_h=2)
    reason = check_submit(snapshot([], PRICES), new)
    assert reason is not None
    assert "deadline" in reason


def test_capacity_held_until_past_the_deadline_is_refused() -> None:
    held = tuple(Occupancy(region=r, gpus=1, start=T0, end=T0 + timedelta(hours=5)) for r in PRICES)
    new = job("new", duration_h=1, deadline_h=4)
    reason = check_submit(snapshot([], PRICES, gpus={"a": 1, "b": 1}, occupancy=held), new)
    assert reason is not None
    assert "capacity" in reason


def test_capacity_that_frees_in_time_is_accepted() -> None:
    held = tuple(Occupancy(region=r, gpus=1, start=T0, end=T0 + timedelta(hours=2)) for r in PRICES)
    new = job("new", duration_h=1, deadline_h=4)
    assert check_submit(snapshot([], PRICES, gpus={"a": 1, "b": 1}, occupancy=held), new) is None


def test_refused_when_it_would_make_queued_jobs_late() -> None:
    queued = [
        job("q1", duration_h=2, deadline_h=2, allowed=("a",)),
        job("q2", duration_h=2, deadline_h=4, allowed=("a",)),
    ]
    new = job("new", duration_h=2, deadline_h=6, allowed=("a",))
    snap = snapshot(queued, PRICES, gpus={"a": 1, "b": 1})
    assert check_submit(snap, new) is None  # 4-6 is free
    tight = dataclasses.replace(new, deadline=T0 + timedelta(hours=2))
    reason = check_submit(snap, tight)
    assert reason is not None


def test_new_job_already_in_the_snapshot_is_counted_once() -> None:
    new = job("new", duration_h=2, deadline_h=2, allowed=("a",))
    snap = snapshot([new], PRICES, gpus={"a": 1, "b": 1})
    assert check_submit(snap, snap.jobs[-1]) is None


def test_deployments_need_only_the_gpus() -> None:
    service = job("svc", duration_h=24, deadline_h=None, kind=JobKind.DEPLOYMENT, gpus=1)
    assert check_submit(snapshot([], PRICES, gpus={"a": 1, "b": 1}), service) is None
