"""The planning grid: a slot-aligned time axis, and carbon series resampled onto it.

A cycle plans on slots of ``step_s`` seconds starting at ``origin``, the cycle's ``now`` floored
to a multiple of ``step_s`` since the Unix epoch, so that plans made by successive cycles land on
the same instants and do not drift with the moment each cycle ran. Positions on the grid are
floats in slot units (``x = 2.5`` is half way through slot 2); ``now`` itself is usually inside
slot 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import numpy.typing as npt

from scheduler.domain import Forecast

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def slot_origin(now: datetime, step_s: int) -> datetime:
    """``now`` floored to a multiple of ``step_s`` seconds since the epoch (aware UTC).

    Raises ValueError for a naive datetime or a non-positive step.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if step_s <= 0:
        raise ValueError(f"step_s must be positive, got {step_s}")
    elapsed_us = (now - _EPOCH) // timedelta(microseconds=1)
    step_us = step_s * 1_000_000
    return _EPOCH + timedelta(microseconds=(elapsed_us // step_us) * step_us)


@dataclass(frozen=True, slots=True)
class PlanningGrid:
    """``n_slots`` slots of ``step_s`` seconds from ``origin`` (slot-aligned, aware UTC)."""

    origin: datetime
    step_s: int
    n_slots: int

    @classmethod
    def covering(cls, now: datetime, step_s: int, end: datetime) -> PlanningGrid:
        """The grid from ``now``'s slot to at least ``end`` (one slot at the least)."""
        origin = slot_origin(now, step_s)
        n_slots = max(1, math.ceil((end - origin).total_seconds() / step_s))
        return cls(origin=origin, step_s=step_s, n_slots=n_slots)

    @property
    def step_h(self) -> float:
        return self.step_s / 3600.0

    @property
    def end(self) -> datetime:
        return self.slot_start(self.n_slots)

    def slot_start(self, k: int) -> datetime:
        return self.origin + timedelta(seconds=k * self.step_s)

    def to_x(self, at: datetime) -> float:
        """Position of ``at`` on the grid, in slots (negative before the origin)."""
        return (at - self.origin).total_seconds() / self.step_s

    def to_time(self, x: float) -> datetime:
        return self.origin + timedelta(seconds=x * self.step_s)


def series_arrays(series: Forecast) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Each point's validity ``[start_s, end_s)`` in epoch seconds, and its g/kWh.

    A point holds for ``resolution_s`` or until the next point, whichever comes first, so a
    series with mixed resolutions never counts one instant twice.
    """
    starts = np.fromiter(
        ((p.valid_at - _EPOCH).total_seconds() for p in series.points),
        dtype=np.float64,
        count=len(series.points),
    )
    values = np.fromiter(
        (p.g_per_kwh for p in series.points), dtype=np.float64, count=len(series.points)
    )
    ends = starts + float(series.resolution_s)
    if len(starts) > 1:
        ends[:-1] = np.minimum(ends[:-1], starts[1:])
    return starts, ends, values


def resample(series: Forecast, grid: PlanningGrid) -> FloatArray:
    """The series' time-weighted mean intensity in each slot of ``grid``, g/kWh.

    Each point is forward-filled over its own validity only: a slot no point covers (a gap, or
    beyond the series' end) is NaN, meaning unpriced. A slot partly covered gets the mean over
    its covered part.
    """
    out = np.full(grid.n_slots, np.nan)
    if not series.points:
        return out
    starts, ends, values = series_arrays(series)
    lengths = np.maximum(ends - starts, 0.0)
    cum_g = np.concatenate(([0.0], np.cumsum(values * lengths)))
    cum_cover = np.concatenate(([0.0], np.cumsum(lengths)))
    origin_s = (grid.origin - _EPOCH).total_seconds()
    bounds = origin_s + grid.step_s * np.arange(grid.n_slots + 1, dtype=np.float64)
    idx = np.searchsorted(starts, bounds, side="right") - 1
    safe = np.clip(idx, 0, len(starts) - 1)
    inside = np.clip(bounds - starts[safe], 0.0, lengths[safe])
    inside = np.where(idx >= 0, inside, 0.0)
    g_at = np.where(idx >= 0, cum_g[safe] + values[safe] * inside, 0.0)
    cover_at = np.where(idx >= 0, cum_cover[safe] + inside, 0.0)
    covered = np.diff(cover_at)
    has = covered > 1e-9
    out[has] = np.diff(g_at)[has] / covered[has]
    return out
