"""The snapshot's jobs as columns of numbers on the planning grid.

Positions and durations are in slots (floats). ``x_e`` is the earliest start (``now`` or the
job's ``earliest_start``, whichever is later), ``x_l`` the latest start that still meets the
deadline (``inf`` for open-ended jobs), ``x_b`` the baseline start (``submitted_at`` or ``now``,
whichever is later). ``allowed[j]`` lists the rows of the regions a job may use, home first.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from scheduler.domain import JobKind, Policy
from scheduler.planning.grid import BoolArray, FloatArray, IntArray, PlanningGrid, slot_origin
from scheduler.planning.snapshot import PlanningJob, RegionState

# Open-ended jobs and far deadlines are planned over at most this far ahead.
HORIZON_CAP_S = 60 * 24 * 3600.0
# A job of zero expected duration still occupies its slot for an instant.
MIN_DURATION_S = 1.0
# A job that states no power is weighed as drawing this per GPU (one at least) when jobs compete,
# so that it still moves to clean windows; its reported emissions use its stated power.
NOMINAL_POWER_PER_GPU_KW = 0.3


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
    # ``order()`` once computed (a cycle asks for it several times; 0.1 s at 100,000 jobs).
    # Not an init field, so ``dataclasses.replace`` (``stability.subset``) starts it empty.
    _order: list[IntArray] = field(default_factory=list, init=False, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.jobs)

    def slack(self) -> FloatArray:
        """Latest minus earliest start, slots (``inf`` for open-ended, -inf for deployments)."""
        slack: FloatArray = np.where(self.deployment, -np.inf, self.x_l - self.x_e)
        return slack

    def order(self) -> IntArray:
        """Least slack first, then higher priority, then earlier submission, then id."""
        if not self._order:
            submitted = np.array([j.submitted_at.timestamp() for j in self.jobs])
            ids = np.array([j.id for j in self.jobs])
            self._order.append(np.lexsort((ids, submitted, -self.priority, self.slack())))
        order: IntArray = self._order[0].copy()
        return order


def _columns(
    jobs: Sequence[PlanningJob],
    regions: Sequence[RegionState],
    now: datetime,
    origin: datetime,
    step: float,
) -> tuple[FloatArray, list[IntArray]]:
    """Per job (rows): earliest, latest and baseline starts and duration (slots), GPUs, kW,
    home row; and its allowed rows, home first. Times go through epoch seconds: one call per
    field, then numpy (aware-datetime arithmetic per job is the slow part at 10k jobs)."""
    index = {r.name: i for i, r in enumerate(regions)}
    every = tuple(range(len(regions)))
    rows_cache: dict[tuple[tuple[str, ...], str], IntArray] = {}
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
    origin_s, now_s = origin.timestamp(), now.timestamp()
    earliest_s = np.array([j.earliest_start.timestamp() for j in jobs], dtype=np.float64)
    submitted_s = np.array([j.submitted_at.timestamp() for j in jobs], dtype=np.float64)
    deadline_s = np.array(
        [math.inf if j.deadline is None else j.deadline.timestamp() for j in jobs],
        dtype=np.float64,
    )
    dur = np.maximum(np.array([j.duration_s for j in jobs], dtype=np.float64), MIN_DURATION_S)
    cols = np.empty((len(jobs), 7))
    cols[:, 0] = (np.maximum(earliest_s, now_s) - origin_s) / step
    cols[:, 1] = (deadline_s - origin_s - dur) / step
    cols[:, 2] = (np.maximum(submitted_s, now_s) - origin_s) / step
    cols[:, 3] = dur / step
    cols[:, 4] = [j.gpus for j in jobs]
    cols[:, 5] = np.array([j.power_w for j in jobs], dtype=np.float64) / 1000.0
    cols[:, 6] = [index.get(j.home_region, -1) for j in jobs]
    return cols, allowed


def build_table(
    jobs: Sequence[PlanningJob],
    regions: Sequence[RegionState],
    now: datetime,
    step_s: int,
    reach: datetime | None = None,
) -> JobTable:
    """Columns for ``jobs`` on the grid from ``now``'s slot. The grid reaches ``reach`` (the
    series' end, the end of capacity running jobs hold: so a late job sees when GPUs free up),
    every job's run from its earliest start and from its baseline start, and every start up to
    its deadline (open-ended jobs: up to ``reach``); deadlines count up to ``HORIZON_CAP_S``
    past ``now``. Unknown allowed regions are dropped; an empty allowed list means every
    region."""
    origin = slot_origin(now, step_s)
    step = float(step_s)
    arr, allowed = _columns(jobs, regions, now, origin, step)
    x_e, x_l, x_b, d = arr[:, 0], arr[:, 1], arr[:, 2], arr[:, 3]
    now_x = (now - origin).total_seconds() / step
    reach_x = max(now_x, (reach - origin).total_seconds() / step if reach else now_x)
    cap_x = now_x + HORIZON_CAP_S / step
    end_x = min(reach_x, cap_x)
    if len(arr):
        last = np.minimum(np.where(np.isfinite(x_l), x_l, reach_x), cap_x)
        end_x = max(
            end_x,
            float((x_e + d).max()),
            float((x_b + d).max()),
            float((np.maximum(last, x_e) + d).max()),
        )
    grid = PlanningGrid(origin=origin, step_s=step_s, n_slots=max(1, math.ceil(end_x - 1e-9)))
    return JobTable(
        grid=grid,
        regions=tuple(r.name for r in regions),
        jobs=tuple(jobs),
        x_e=x_e,
        x_l=x_l,
        x_b=x_b,
        d=d,
        gpus=arr[:, 4].astype(np.int64),
        power_kw=arr[:, 5],
        weight_kw=np.where(
            arr[:, 5] > 0, arr[:, 5], NOMINAL_POWER_PER_GPU_KW * np.maximum(arr[:, 4], 1.0)
        ),
        home=arr[:, 6].astype(np.int64),
        allowed=tuple(allowed),
        deployment=np.array([j.kind is JobKind.DEPLOYMENT for j in jobs], dtype=np.bool_),
        interruptible=np.array([j.interruptible for j in jobs], dtype=np.bool_),
        priority=np.array([j.priority for j in jobs], dtype=np.int64),
        policy=tuple(j.policy for j in jobs),
    )
