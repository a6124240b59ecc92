"""Window search for one job in one region: the cheapest start before a deadline.

The cost of starting at ``x`` (slots) is the intensity integrated over ``[x, x + d)``, with the
last slot counted by the fraction the run covers. Prefix sums make each start O(1) and the search
one vectorised argmin over the feasible starts: the earliest position (usually ``now``, inside
slot 0) and every later slot boundary up to the latest start that meets the deadline. Run-now is
always a candidate, so the choice is never worse than run-now on the series it used; ties (within
a relative 1e-9) go to the earliest start.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from scheduler.domain import Forecast
from scheduler.planning.grid import FloatArray, PlanningGrid, resample
from scheduler.planning.prices import fill_for_planning

TIE_RTOL = 1e-9


def first_min(scores: FloatArray) -> int:
    """Index of the first element within ``TIE_RTOL`` of the minimum (ties to the earliest).

    ``scores`` may hold ``inf`` for excluded entries; raises ValueError when all are excluded.
    """
    best = float(np.min(scores))
    if not math.isfinite(best):
        raise ValueError("no finite score")
    return int(np.argmax(scores <= best + TIE_RTOL * max(1.0, abs(best))))


def candidate_starts(earliest_x: float, latest_x: float, last_start_x: float) -> FloatArray:
    """Feasible starts: ``earliest_x``, then every slot boundary in ``(earliest_x, latest_x]``
    that is also ``<= last_start_x``. Always holds ``earliest_x`` (run-now), even when it is
    past ``latest_x`` (the job is late and starts as soon as it may)."""
    first_boundary = math.floor(earliest_x) + 1
    last = math.floor(min(latest_x, last_start_x) + 1e-9)
    later = np.arange(first_boundary, max(first_boundary, last + 1), dtype=np.float64)
    return np.concatenate(([earliest_x], later))


def run_costs(intensity: FloatArray, starts_x: FloatArray, duration_slots: float) -> FloatArray:
    """Integrated intensity (g/kWh x slots) of a run of ``duration_slots`` from each start;
    NaN when the run touches an unpriced slot or leaves the array."""
    n = len(intensity)
    padded = np.concatenate((np.nan_to_num(intensity, nan=0.0), [0.0]))
    prefix = np.concatenate(([0.0], np.cumsum(padded)))
    nan_count = np.concatenate(([0], np.cumsum(np.isnan(intensity))))
    ends = starts_x + duration_slots
    inside = (starts_x >= 0) & (ends <= n + 1e-9)
    s = np.clip(starts_x, 0, n)
    e = np.clip(ends, 0, n)
    fs, fe = np.floor(s).astype(np.int64), np.floor(e).astype(np.int64)
    cost = (prefix[fe] + (e - fe) * padded[fe]) - (prefix[fs] + (s - fs) * padded[fs])
    last_touched = np.ceil(e - 1e-9).astype(np.int64)
    touched_nan = nan_count[np.maximum(last_touched, fs)] - nan_count[fs] > 0
    result: FloatArray = np.where(inside & ~touched_nan, cost, np.nan)
    return result


@dataclass(frozen=True, slots=True)
class WindowChoice:
    """The chosen start (slots) and its cost, with run-now's cost for comparison (both in
    g/kWh x slots; ``run_now_cost`` is NaN when run-now is unpriced)."""

    start_x: float
    cost: float
    run_now_cost: float


def best_start(
    intensity: FloatArray,
    duration_slots: float,
    earliest_x: float,
    latest_x: float,
) -> WindowChoice:
    """The cheapest start of a run of ``duration_slots`` in ``[earliest_x, latest_x]``.

    ``intensity`` is g/kWh per slot (NaN = unpriced). Starts whose run touches an unpriced slot
    are skipped; when none is priced the choice is run-now with a NaN cost.
    """
    starts = candidate_starts(earliest_x, latest_x, len(intensity) - duration_slots)
    costs = run_costs(intensity, starts, duration_slots)
    run_now = float(costs[0])
    scores = np.where(np.isnan(costs), np.inf, costs)
    if not np.isfinite(scores).any():
        return WindowChoice(start_x=earliest_x, cost=math.nan, run_now_cost=run_now)
    k = first_min(scores)
    return WindowChoice(start_x=float(starts[k]), cost=float(costs[k]), run_now_cost=run_now)


def best_window(
    forecast: Forecast,
    now: datetime,
    window_s: float,
    step_s: int,
    deadline: datetime | None = None,
) -> tuple[datetime, datetime] | None:
    """The lowest-carbon window of ``window_s`` seconds starting at or after ``now`` in one
    forecast, as ``(start, end)``; ends by ``deadline`` when given, else by the forecast's end.

    Gaps are filled as for planning (``scheduler.planning.prices``). None when the forecast
    prices nothing from ``now`` on. Raises ValueError for a non-positive window or a naive
    ``now``.
    """
    if window_s <= 0:
        raise ValueError(f"window_s must be positive, got {window_s}")
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    end = forecast.end
    if end is None or end <= now:
        return None
    limit = max(end, now + timedelta(seconds=window_s))
    grid = PlanningGrid.covering(now, step_s, limit + timedelta(seconds=window_s))
    filled, start_end = fill_for_planning(resample(forecast, grid))
    if start_end == 0:
        return None
    latest_end = deadline if deadline is not None else end
    latest_x = grid.to_x(latest_end) - window_s / step_s
    choice = best_start(filled, window_s / step_s, grid.to_x(now), min(latest_x, start_end - 1.0))
    start = now if choice.start_x == grid.to_x(now) else grid.to_time(choice.start_x)
    return start, start + timedelta(seconds=window_s)
