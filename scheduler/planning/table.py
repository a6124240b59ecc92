"""The snapshot's jobs as columns of numbers on the planning grid.

Positions and durations are in slots (floats). ``x_e`` is the earliest start (``now`` or the
job's ``earliest_start``, whichever is later), ``x_l`` the latest start that still meets the
deadline (``inf`` for open-ended jobs), ``x_b`` the baseline start (``submitted_at`` or ``now``,
whichever is later). ``allowed[j]`` lists the rows of the regions a job may use, home first.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from scheduler.domain import JobKind, Policy
from scheduler.planning.grid import BoolArray, FloatArray, IntArray, PlanningGrid
from scheduler.planning.snapshot import PlanningJob, RegionState

# Open-ended jobs and far deadlines are planned over at most this far ahead.
HORIZON_CAP_S = 60 * 24 * 3600.0
# A job of zero expected duration still occupies its slot for an instant.
MIN_DURATION_S = 1.0
# A job that states no power is weighed as drawing this per GPU (one at least) when jobs compete,
# so that it still moves to clean windows; its reported emissions use its stated power.
NOMINAL_POWER_PER_GPU_KW = 0.3


def duration_s(job: PlanningJob) -> float:
    return max(job.duration_s, MIN_DURATION_S)


def grid_end(jobs: Sequence[PlanningJob], now: datetime, series_end: datetime | None) -> datetime:
    """The instant the planning grid must reach: every job's run from its earliest start and
    from its baseline start, and every start up to its deadline (or, open-ended, up to the
    series' end), capped at ``HORIZON_CAP_S`` past ``now`` for the deadlines."""
    cap = now + timedelta(seconds=HORIZON_CAP_S)
    end = now
    for job in jobs:
        run = timedelta(seconds=duration_s(job))
        earliest = max(now, job.earliest_start)
        last_end = job.deadline if job.deadline is not None else (
            (series_end or now) + run)
        end = max(end, earliest + run, max(now, job.submitted_at) + run,
                  min(max(last_end, earliest + run), cap + run))
    return end


@dataclass(frozen=True, slots=True)
class JobTable:
    grid: PlanningGrid
    regions: tuple[str, ...]
    jobs: tuple[PlanningJob, ...]
    x_e: FloatArray
    x_l: FloatArray
    x_b: FloatArray
    d: FloatArray
    gpus: IntArray
    power_kw: FloatArray
    weight_kw: FloatArray
    home: IntArray
    allowed: tuple[IntArray, ...]
    deployment: BoolArray
    interruptible: BoolArray
    priority: IntArray
    policy: tuple[Policy, ...]

    def __len__(self) -> int:
        return len(self.jobs)

    def slack(self) -> FloatArray:
        """Latest minus earliest start, slots (``inf`` for open-ended, -inf for deployments)."""
        slack: FloatArray = np.where(self.deployment, -np.inf, self.x_l - self.x_e)
        return slack

    def order(self) -> IntArray:
        """Least slack first, then higher priority, then earlier submission, then id."""
        submitted = np.array([j.submitted_at.timestamp() for j in self.jobs])
        ids = np.array([j.id for j in self.jobs])
        order: IntArray = np.lexsort((ids, submitted, -self.priority, self.slack()))
        return order


def build_table(
    jobs: Sequence[PlanningJob], regions: Sequence[RegionState], grid: PlanningGrid,
    now: datetime,
) -> JobTable:
    """Columns for ``jobs`` on ``grid``. Unknown allowed regions are dropped; an empty
    allowed list means every region."""
    index = {r.name: i for i, r in enumerate(regions)}
    every = tuple(range(len(regions)))
    rows_cache: dict[tuple[tuple[str, ...], str], IntArray] = {}
    origin, step = grid.origin, float(grid.step_s)
    cols: list[tuple[float, float, float, float, int, float, int]] = []
    allowed: list[IntArray] = []
    for job in jobs:
        key = (job.allowed_regions, job.home_region)
        rows = rows_cache.get(key)
        if rows is None:
            named = [index[n] for n in job.allowed_regions if n in index] or list(every)
            home = index.get(job.home_region, -1)
            ordered = ([home] if home in named else []) + [r for r in named if r != home]
            rows = rows_cache[key] = np.array(ordered, dtype=np.int64)
        allowed.append(rows)
        dur = duration_s(job)
        x_e = (max(now, job.earliest_start) - origin).total_seconds() / step
        x_l = math.inf if job.deadline is None else (
            (job.deadline - origin).total_seconds() - dur) / step
        x_b = (max(now, job.submitted_at) - origin).total_seconds() / step
        cols.append((x_e, x_l, x_b, dur / step, job.gpus, job.power_w / 1000.0,
                     index.get(job.home_region, -1)))
    arr = np.array(cols, dtype=np.float64).reshape(len(cols), 7)
    return JobTable(
        grid=grid, regions=tuple(r.name for r in regions), jobs=tuple(jobs), x_e=arr[:, 0],
        x_l=arr[:, 1], x_b=arr[:, 2], d=arr[:, 3],
        gpus=arr[:, 4].astype(np.int64), power_kw=arr[:, 5],
        weight_kw=np.where(arr[:, 5] > 0, arr[:, 5],
                           NOMINAL_POWER_PER_GPU_KW * np.maximum(arr[:, 4], 1.0)),
        home=arr[:, 6].astype(np.int64),
        allowed=tuple(allowed),
        deployment=np.array([j.kind is JobKind.DEPLOYMENT for j in jobs], dtype=np.bool_),
        interruptible=np.array([j.interruptible for j in jobs], dtype=np.bool_),
        priority=np.array([j.priority for j in jobs], dtype=np.int64),
        policy=tuple(j.policy for j in jobs))
