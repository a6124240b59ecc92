"""Planning prices: every region's intensity on the grid, gap-filled, with prefix sums.

The planner prices a run by integrating intensity over it. Slots a series leaves unpriced are
filled so that every run can be compared, under three rules:

* before the series' first point: its first value (a forecast issued a little after ``now``);
* gaps between points: linear interpolation between the neighbours;
* beyond the series' end: the mean of its priced slots on the grid (a neutral guess), and a run
  may not *start* there (``start_end``), so nothing is deferred into the unknown.

A region without a series is unpriced (``start_end == 0``) and gets no candidates.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import numpy as np

from scheduler.domain import Forecast
from scheduler.planning.grid import BoolArray, FloatArray, IntArray, PlanningGrid, resample
from scheduler.planning.snapshot import LeadError, RegionState

# Weights of a block and its neighbours in ``PriceBook.with_error_margin``'s smoothing.
SMOOTHING_KERNEL = np.array([0.25, 0.5, 0.25])


def fill_for_planning(raw: FloatArray) -> tuple[FloatArray, int]:
    """Fill ``raw`` (NaN = unpriced) by the module's rules.

    Returns ``(filled, start_end)``: ``start_end`` is one past the last priced slot (0 and an
    all-NaN array when nothing is priced).
    """
    priced = np.flatnonzero(~np.isnan(raw))
    if priced.size == 0:
        return np.full_like(raw, np.nan), 0
    first, last = int(priced[0]), int(priced[-1])
    filled = raw.copy()
    filled[:first] = raw[first]
    inner = np.arange(first, last + 1)
    gaps = np.isnan(filled[first : last + 1])
    if gaps.any():
        filled[first : last + 1][gaps] = np.interp(inner[gaps], priced, raw[priced])
    filled[last + 1 :] = float(np.mean(raw[priced]))
    return filled, last + 1


@dataclass(frozen=True, slots=True)
class PriceBook:
    """Intensity of every region on one grid, ready for O(1) run costs.

    ``values`` is ``(R, S + 1)`` g/kWh (the last column is zero padding so a run may end exactly
    at the grid's end); ``prefix`` is ``(R, S + 2)`` with ``prefix[r, k] = sum(values[r, :k])``.
    Run costs are in g/kWh x slots: multiply by kW, PUE and ``grid.step_h`` for grams.
    """

    grid: PlanningGrid
    regions: tuple[str, ...]
    values: FloatArray
    prefix: FloatArray
    start_end: IntArray
    pue: FloatArray
    issued_at: tuple[datetime | None, ...]
    priced: BoolArray
    # Slots k where some region's price differs from slot k - 1, or a series' step begins:
    # between them prices are flat, so a run's cost is linear in its start and its minimum
    # sits next to a break.
    breaks: IntArray
    # Mean intensity x PUE over the priced regions' priced slots, g/kWh: the scale of this
    # book's grams (what a time value in kWh is worth here, ``policies.wait_costs``).
    mean_g_per_kwh: float = 0.0

    def index(self, region: str) -> int:
        """Row of ``region``; raises ValueError for an unknown one."""
        return self.regions.index(region)

    def integral(self, rows: IntArray, y: FloatArray) -> FloatArray:
        """Integral of intensity from the origin to ``y`` (slots), per row: ``(len(rows), len(y))``.

        ``y`` must lie in ``[0, S]``.
        """
        fl = np.floor(y).astype(np.int64)
        r = rows[:, None]
        result: FloatArray = self.prefix[r, fl] + (y - fl) * self.values[r, fl]
        return result

    def run_cost(self, rows: IntArray, starts_x: FloatArray, duration_slots: float) -> FloatArray:
        """Intensity integrated over ``[x, x + d)`` for each row and start: g/kWh x slots."""
        return self.integral(rows, starts_x + duration_slots) - self.integral(rows, starts_x)

    def pointwise_cost(self, rows: IntArray, starts_x: FloatArray, d: FloatArray) -> FloatArray:
        """``run_cost`` of one run per element: row ``rows[i]`` from ``starts_x[i]`` for
        ``d[i]`` slots (1-D arrays of one length)."""
        width = self.prefix.shape[1]
        flat_p, flat_v = self.prefix.ravel(), self.values.ravel()
        out = np.zeros(len(rows))
        for x, sign in ((starts_x + d, 1.0), (starts_x, -1.0)):
            fl = np.floor(x).astype(np.int64)
            out += sign * (flat_p[rows * width + fl] + (x - fl) * flat_v[rows * (width - 1) + fl])
        return out

    def with_error_margin(
        self,
        errors: Mapping[str, Sequence[LeadError]],
        now: datetime,
    ) -> PriceBook:
        """Robust prices: each slot's intensity, smoothed over its neighbours, plus the measured
        mean absolute error at its lead time (interpolated, made non-decreasing with lead).
        Regions without a measured error keep their prices. ``now`` stands in for an unknown
        issue time.

        The smoothing (``SMOOTHING_KERNEL`` over the flat price blocks between breaks) is there
        because a forecast with error makes its lowest points look lower than they will be: a
        lone dip is more likely noise than a low stretch is, and averaging it with its
        neighbours ranks stretches by what they are expected to cost (with white noise of the
        forecasts' 5% sigma it lifts Let's Wait Awhile's ML scenario by 0.1-0.2 points)."""
        values = self.values.copy()
        # The margin is held constant between price breaks, so the breaks stay the breaks.
        block_start = np.concatenate(([0], self.breaks))
        block_of = np.searchsorted(block_start, np.arange(self.grid.n_slots), side="right") - 1
        mids_s = (block_start[block_of] + 0.5) * self.grid.step_s
        for row, region in enumerate(self.regions):
            table = sorted(errors.get(region, ()), key=lambda e: e.lead_s)
            if not table or not self.priced[row]:
                continue
            _smooth_blocks(values[row], block_start, int(self.start_end[row]))
            issued = self.issued_at[row] or now
            lead_s = mids_s + (self.grid.origin - issued).total_seconds()
            leads = np.array([e.lead_s for e in table])
            maes = np.maximum.accumulate(np.array([e.mae_g_per_kwh for e in table]))
            values[row, :-1] += np.interp(lead_s, leads, maes)
        return replace(self, values=values, prefix=_prefix(values))


def _smooth_blocks(row_values: FloatArray, block_start: IntArray, start_end: int) -> None:
    """Smooth the priced blocks of one region in place; the edges repeat their own value."""
    starts = block_start[block_start < start_end]
    if len(starts) < 2:
        return
    block = row_values[starts]
    padded = np.concatenate((block[:1], block, block[-1:]))
    smooth = np.convolve(padded, SMOOTHING_KERNEL, mode="valid")
    ends = np.append(starts[1:], start_end)
    row_values[:start_end] = np.repeat(smooth, ends - starts)


def _prefix(values: FloatArray) -> FloatArray:
    out = np.zeros((values.shape[0], values.shape[1] + 1))
    np.cumsum(values, axis=1, out=out[:, 1:])
    return out


def build_price_book(
    grid: PlanningGrid,
    regions: Sequence[RegionState],
    series: Mapping[str, Forecast],
) -> PriceBook:
    """Resample and fill ``series[region]`` for every region (missing ones are unpriced)."""
    values = np.zeros((len(regions), grid.n_slots + 1))
    start_end = np.zeros(len(regions), dtype=np.int64)
    issued: list[datetime | None] = []
    resolution_s = grid.step_s
    for row, region in enumerate(regions):
        forecast = series.get(region.name)
        issued.append(forecast.issued_at if forecast is not None else None)
        if forecast is None:
            continue
        filled, start_end[row] = fill_for_planning(resample(forecast, grid))
        if start_end[row] > 0:
            values[row, :-1] = filled
            resolution_s = max(resolution_s, forecast.resolution_s)
    changed = (values[:, 1:-1] != values[:, :-2]).any(axis=0)
    # The series' own step boundaries count as breaks too (a flat stretch of a forecast still
    # has leads that grow step by step, see ``with_error_margin``).
    origin_s = (grid.origin - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds()
    at_s = origin_s + grid.step_s * np.arange(1, grid.n_slots)
    changed |= np.isclose(np.mod(at_s, resolution_s), 0.0)
    priced_means = [
        float(values[row, : start_end[row]].mean()) * regions[row].pue
        for row in range(len(regions))
        if start_end[row] > 0
    ]
    return PriceBook(
        grid=grid,
        regions=tuple(r.name for r in regions),
        values=values,
        prefix=_prefix(values),
        start_end=start_end,
        pue=np.array([r.pue for r in regions], dtype=np.float64),
        issued_at=tuple(issued),
        priced=start_end > 0,
        breaks=np.flatnonzero(changed).astype(np.int64) + 1,
        mean_g_per_kwh=float(np.mean(priced_means)) if priced_means else 0.0,
    )
