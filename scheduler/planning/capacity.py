"""Free GPUs per region per slot, and the spans runs occupy.

A run from ``x`` for ``d`` slots occupies every slot it touches, ``floor(x)`` to
``ceil(x + d) - 1``: capacity is tracked per slot, so a run that ends mid-slot holds its GPUs for
the whole slot. Started jobs (``Occupancy``) are subtracted the same way. Free counts may go
negative when running jobs already overbook a region; such slots simply have no room.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from scheduler.planning.grid import BoolArray, FloatArray, IntArray, PlanningGrid
from scheduler.planning.snapshot import Occupancy, RegionState

SPAN_EPS = 1e-9


def span(x: float, d: float, n_slots: int) -> tuple[int, int]:
    """Slots ``[a, b)`` a run ``[x, x + d)`` touches, clipped to the grid."""
    a = math.floor(x + SPAN_EPS)
    b = max(a + 1, math.ceil(x + d - SPAN_EPS))
    return max(a, 0), min(b, n_slots)


def spans(x: FloatArray, d: FloatArray, n_slots: int) -> tuple[IntArray, IntArray]:
    """``span`` of many runs: the slots ``[lo, hi)`` each touches."""
    lo = np.maximum(np.floor(x + SPAN_EPS).astype(np.int64), 0)
    hi = np.minimum(np.maximum(lo + 1, np.ceil(x + d - SPAN_EPS).astype(np.int64)), n_slots)
    return lo, hi


def held(
    shape: tuple[int, ...], rows: IntArray, lo: IntArray, hi: IntArray, gpus: IntArray
) -> IntArray:
    """GPUs the runs ``[lo, hi)`` on ``rows`` hold, per row and slot (``shape``)."""
    n_rows, n_slots = shape
    steps = np.zeros((n_rows, n_slots + 1), dtype=np.int64)
    np.add.at(steps, (rows, lo), gpus)
    np.add.at(steps, (rows, hi), -gpus)
    out: IntArray = np.cumsum(steps, axis=1)[:, :n_slots]
    return out


class CapacityLedger:
    """Free GPUs ``free[r, k]`` on the grid; mutated as runs are committed and released."""

    def __init__(self, free: IntArray) -> None:
        self.free = free
        # Per GPU count g: prefix counts of the slots with fewer than g free, per row, and
        # the rows changed since they were counted (kept current lazily).
        self._short: dict[int, IntArray] = {}
        self._stale: dict[int, set[int]] = {}

    def assign(self, free: IntArray) -> None:
        """Replace the free counts wholesale."""
        self.free[...] = free
        self._short.clear()
        self._stale.clear()

    def touch_all(self) -> None:
        """Mark every row changed (after ``free`` was written directly)."""
        for stale in self._stale.values():
            stale.update(range(self.free.shape[0]))

    def _touch(self, row: int) -> None:
        for stale in self._stale.values():
            stale.add(row)

    def short_counts(self, gpus: int) -> IntArray:
        """``(S + 1, R)``: ``[k, r]`` counts the slots before ``k`` with fewer than ``gpus``
        free in row ``r`` (slot-major, so a set of starts gathers whole rows)."""
        counts = self._short.get(gpus)
        if counts is None:
            counts = np.zeros((self.free.shape[1] + 1, self.free.shape[0]), dtype=np.int64)
            np.cumsum((self.free < gpus).T, axis=0, out=counts[1:])
            self._short[gpus], self._stale[gpus] = counts, set()
            return counts
        stale = self._stale[gpus]
        for row in stale:
            np.cumsum(self.free[row] < gpus, out=counts[1:, row])
        stale.clear()
        return counts

    @classmethod
    def build(
        cls,
        grid: PlanningGrid,
        regions: Sequence[RegionState],
        occupancy: Sequence[Occupancy],
    ) -> CapacityLedger:
        free = np.repeat(
            np.array([r.gpus for r in regions], dtype=np.int64)[:, None], grid.n_slots, axis=1
        )
        index = {r.name: i for i, r in enumerate(regions)}
        for held in occupancy:
            row = index.get(held.region)
            if row is None or held.gpus <= 0:
                continue
            x0 = grid.to_x(held.start)
            a, b = span(x0, grid.to_x(held.end) - x0, grid.n_slots)
            if b > a:
                free[row, a:b] -= held.gpus
        return cls(free)

    @property
    def n_slots(self) -> int:
        return int(self.free.shape[1])

    def copy(self) -> CapacityLedger:
        return CapacityLedger(self.free.copy())

    def fits(self, row: int, x: float, d: float, gpus: int) -> bool:
        if gpus <= 0:
            return True
        a, b = span(x, d, self.n_slots)
        return b <= a or int(self.free[row, a:b].min()) >= gpus

    def take(self, row: int, x: float, d: float, gpus: int) -> None:
        if gpus > 0:
            a, b = span(x, d, self.n_slots)
            self.free[row, a:b] -= gpus
            self._touch(row)

    def release(self, row: int, x: float, d: float, gpus: int) -> None:
        if gpus > 0:
            a, b = span(x, d, self.n_slots)
            self.free[row, a:b] += gpus
            self._touch(row)

    def feasible(self, rows: IntArray, starts_x: FloatArray, d: float, gpus: int) -> BoolArray:
        """``(len(rows), len(starts_x))``: whether each start has ``gpus`` free in every slot
        of its run, per row. ``starts_x`` must be ascending."""
        shape = (len(rows), len(starts_x))
        if gpus <= 0:
            return np.ones(shape, dtype=np.bool_)
        a = np.floor(starts_x + SPAN_EPS).astype(np.int64)
        b = np.minimum(
            np.maximum(a + 1, np.ceil(starts_x + d - SPAN_EPS).astype(np.int64)), self.n_slots
        )
        counts = self.short_counts(gpus)
        ok: BoolArray = (counts[b][:, rows] == counts[a][:, rows]).T
        return ok
