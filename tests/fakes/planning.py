"""Builders of planning inputs for the pure core's tests: series, jobs, snapshots."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from scheduler.domain import Forecast, IntensityPoint, JobKind, Policy, SeriesKind
from scheduler.planning.grid import slot_origin
from scheduler.planning.snapshot import Decision, PlanningJob, RegionState, Snapshot

T0 = datetime(2023, 3, 1, tzinfo=UTC)


def series(
    values: Sequence[float],
    *,
    start: datetime = T0,
    resolution_s: int = 3600,
    zone: str = "Z",
    kind: SeriesKind = SeriesKind.FORECAST,
    issued_at: datetime | None = None,
) -> Forecast:
    """Evenly spaced points from ``start``."""
    return Forecast(
        zone=zone,
        provider="test",
        kind=kind,
        issued_at=issued_at or start,
        resolution_s=resolution_s,
        points=tuple(
            IntensityPoint(valid_at=start + timedelta(seconds=i * resolution_s), g_per_kwh=float(v))
            for i, v in enumerate(values)
        ),
    )


def job(
    job_id: str,
    *,
    duration_h: float,
    deadline_h: float | None,
    now: datetime = T0,
    gpus: int = 1,
    power_w: float = 1000.0,
    home: str = "a",
    allowed: tuple[str, ...] = (),
    policy: Policy = Policy.GREENLIGHT,
    interruptible: bool = False,
    kind: JobKind = JobKind.TRAINING,
    earliest_h: float = 0.0,
    submitted_h: float = 0.0,
    priority: int = 0,
) -> PlanningJob:
    """A job submitted at ``now + submitted_h`` with a deadline ``deadline_h`` after ``now``."""
    return PlanningJob(
        id=job_id,
        kind=kind,
        gpus=gpus,
        power_w=power_w,
        duration_s=duration_h * 3600,
        submitted_at=now + timedelta(hours=submitted_h),
        earliest_start=now + timedelta(hours=earliest_h),
        deadline=None if deadline_h is None else now + timedelta(hours=deadline_h),
        home_region=home,
        allowed_regions=allowed,
        policy=policy,
        interruptible=interruptible,
        priority=priority,
    )


def snapshot(
    jobs: Sequence[PlanningJob],
    prices: Mapping[str, Sequence[float]],
    *,
    gpus: Mapping[str, int] | None = None,
    pue: Mapping[str, float] | None = None,
    now: datetime = T0,
    step_s: int = 3600,
    resolution_s: int = 3600,
    **kwargs: Any,
) -> Snapshot:
    """A snapshot over regions named by ``prices`` (hourly forecasts from ``now``'s hour)."""
    start = slot_origin(now, resolution_s)
    snap = Snapshot(
        now=now,
        jobs=tuple(jobs),
        regions=tuple(
            RegionState(name=name, gpus=(gpus or {}).get(name, 100), pue=(pue or {}).get(name, 1.0))
            for name in prices
        ),
        forecasts={
            name: series(v, start=start, resolution_s=resolution_s, zone=name)
            for name, v in prices.items()
        },
        step_s=step_s,
    )
    return dataclasses.replace(snap, **kwargs)


def usage_by_slot(snap: Snapshot, decision: Decision) -> dict[tuple[str, int], int]:
    """GPUs the plans (and the snapshot's occupancy) hold per ``(region, slot)``: a run holds
    every slot it touches."""
    origin = slot_origin(snap.now, snap.step_s)
    gpus = {j.id: j.gpus for j in snap.jobs}
    held: dict[tuple[str, int], int] = {}

    def add(region: str, start: datetime, end: datetime, n: int) -> None:
        a = math.floor((start - origin).total_seconds() / snap.step_s + 1e-9)
        b = max(a + 1, math.ceil((end - origin).total_seconds() / snap.step_s - 1e-9))
        for k in range(max(a, 0), b):
            held[(region, k)] = held.get((region, k), 0) + n

    for job_id, plan in decision.plans.items():
        for window in plan.windows:
            add(window.region, window.start, window.end, gpus[job_id])
    for occ in snap.occupancy:
        add(occ.region, occ.start, occ.end, occ.gpus)
    return held


def total_g(decision: Decision) -> float:
    return sum(p.forecast_emissions_g for p in decision.plans.values())
