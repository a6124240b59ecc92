"""The admission ledger: free GPUs per region per slot, so a submit is checked in O(horizon).

A plan cycle leaves a decision: where and when every queued job will run. The ledger is that
decision seen as capacity: for each region and slot of the planning grid, how many GPUs are

* ``hard`` free: capacity less what started jobs hold (they cannot move), and
* ``free``: ``hard`` less what planned jobs and the jobs admitted since the cycle reserve.

A new job is checked against it without looking at the queue:

1. it fits somewhere in ``free`` before its deadline → **admitted**, and its cheapest such
   window is reserved, so the next submit sees it;
2. it fits only in ``hard`` (it would need a planned job to move) → **admitted, overbooked**:
   the earliest such window is reserved and the next cycle, which can move planned jobs,
   decides; whether moving them works is the NP-hard part the cycle's repair and MIP handle;
3. it fits nowhere even in ``hard`` → **refused**: no placement of the queue can get it in.

So a refusal is exact (every full placement would make the job late), and an admission into
``free`` is safe (the last plan plus this window is a placement where nobody is late). Capacity
is GPUs only, as in the planner: CPUs and memory are the cluster's to pack. Windows follow the
planner's rules (``scheduler.planning.capacity.span``: a run holds every slot it touches;
``scheduler.planning.window.candidate_starts``: run-now, then slot boundaries), and only priced
runs count when the region has a price there, as in the cycle. Pure: no I/O, no clock.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from scheduler.domain import Forecast
from scheduler.planning.capacity import SPAN_EPS, CapacityLedger, span
from scheduler.planning.grid import FloatArray, IntArray, PlanningGrid, resample
from scheduler.planning.snapshot import Occupancy, PlanningJob, RegionState
from scheduler.planning.table import HORIZON_CAP_S, MIN_DURATION_S
from scheduler.planning.window import candidate_starts

# The ledger covers at least this far ahead of its build time, with or without forecasts.
MIN_HORIZON_S = 48 * 3600.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Reservation:
    """GPUs a job holds from ``start`` to ``end`` (exclusive) in ``region``."""

    job_id: str
    region: str
    gpus: int
    start: datetime
    end: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class Verdict:
    """What the ledger says about a job: ``reason`` is None when admitted; ``window`` is the
    reserved run (None for a job that holds no GPUs or was refused); ``overbooked`` says the
    window only fits if planned jobs move (the next cycle decides)."""

    reason: str | None
    window: Reservation | None = None
    overbooked: bool = False

    @property
    def admitted(self) -> bool:
        return self.reason is None


class AdmissionLedger:
    """Free GPUs per region per slot from ``grid.origin``; see the module docstring.

    Not thread-safe: the service holds a lock around ``admit``. Arrays grow on demand; slots
    past the end are free (nothing is booked there) and unpriced.
    """

    def __init__(
        self,
        *,
        grid: PlanningGrid,
        regions: Sequence[RegionState],
        hard: IntArray,
        free: IntArray,
        prices: FloatArray,
        fill_price: float = math.nan,
    ) -> None:
        self.grid = grid
        self._fill_price = fill_price
        self.regions = tuple(regions)
        self._row = {r.name: i for i, r in enumerate(self.regions)}
        self._capacity = np.array([r.gpus for r in self.regions], dtype=np.int64)
        self._pue = np.array([r.pue for r in self.regions], dtype=np.float64)
        self.hard, self.free, self.prices = hard, free, prices
        self._prefix: FloatArray | None = None
        self._padded: FloatArray = prices
        self._nans: IntArray = np.zeros((0, 0), dtype=np.int64)
        # Jobs admitted since the decision the ledger was built from: the next rebuild keeps
        # those its snapshot did not see.
        self.admitted: dict[str, Reservation] = {}

    @classmethod
    def build(
        cls,
        *,
        now: datetime,
        step_s: int,
        regions: Sequence[RegionState],
        occupancy: Iterable[Occupancy] = (),
        planned: Iterable[Reservation] = (),
        forecasts: Mapping[str, Forecast] | None = None,
    ) -> AdmissionLedger:
        """The ledger at ``now``: capacity less ``occupancy`` (started jobs, hard) and less
        ``planned`` (the cycle's plans, soft). ``forecasts`` by region name price the slots;
        None prices every slot alike (admission then ignores prices)."""
        occupancy, planned = tuple(occupancy), tuple(planned)
        ends = [o.end for o in occupancy] + [p.end for p in planned]
        ends += [f.end for f in (forecasts or {}).values() if f.end is not None]
        end = max([now + timedelta(seconds=MIN_HORIZON_S), *ends])
        grid = PlanningGrid.covering(now, step_s, end)
        base = CapacityLedger.build(grid, regions, occupancy)
        if forecasts is None:
            prices = np.zeros(base.free.shape, dtype=np.float64)
        else:
            prices = np.full(base.free.shape, np.nan)
            for i, r in enumerate(regions):
                if r.name in forecasts:
                    prices[i] = resample(forecasts[r.name], grid)
        ledger = cls(
            grid=grid,
            regions=regions,
            hard=base.free.copy(),
            free=base.free,
            prices=prices,
            fill_price=0.0 if forecasts is None else math.nan,
        )
        ledger._take_all(planned)
        return ledger

    def carry_over(self, old: AdmissionLedger, seen: Collection[str]) -> None:
        """Reserve here what ``old`` admitted for jobs not in ``seen``: jobs admitted after the
        cycle this ledger comes from read its snapshot."""
        kept = [
            held
            for job_id, held in old.admitted.items()
            if job_id not in seen and held.end > self.grid.origin  # one the cycle skipped
        ]
        self._take_all(kept)
        self.admitted.update({held.job_id: held for held in kept})

    # --- checks -----------------------------------------------------------------------------

    def check(self, job: PlanningJob, now: datetime) -> Verdict:
        """The verdict for ``job`` at ``now`` without reserving anything."""
        return self._decide(job, now)

    def admit(self, job: PlanningJob, now: datetime) -> Verdict:
        """The verdict for ``job`` at ``now``; when admitted, its window is reserved."""
        verdict = self._decide(job, now)
        if verdict.window is not None:
            self._take(verdict.window)
            self.admitted[job.id] = verdict.window
        return verdict

    def admit_many(self, jobs: Sequence[PlanningJob], now: datetime) -> list[Verdict]:
        """``admit`` for every job, shape by shape: jobs alike in GPUs, duration, start,
        deadline and regions (an array, a sweep) are decided together, a window that still
        fits ``k`` of them taking ``k`` at once. The verdicts are those admitting them one by
        one, in that order, would give; the cost grows with the windows used, not the jobs."""
        verdicts: list[Verdict] = [Verdict(reason=None)] * len(jobs)
        shapes: dict[tuple[object, ...], list[int]] = {}
        for i, job in enumerate(jobs):
            key = (
                job.gpus,
                job.duration_s,
                max(now, job.earliest_start),
                job.deadline,
                job.allowed_regions,
                job.home_region,
            )
            shapes.setdefault(key, []).append(i)
        for pending in shapes.values():
            while pending:
                verdict = self._decide(jobs[pending[0]], now)
                window = verdict.window
                if window is None:  # refused, or holds no GPUs: alike for the whole shape
                    for i in pending:
                        verdicts[i] = verdict
                    break
                n = len(pending) if verdict.overbooked else max(1, self._fits(window))
                for i in pending[:n]:
                    held = dataclasses.replace(window, job_id=jobs[i].id)
                    verdicts[i] = Verdict(reason=None, window=held, overbooked=verdict.overbooked)
                    self.admitted[held.job_id] = held
                self._take(dataclasses.replace(window, gpus=window.gpus * min(n, len(pending))))
                pending = pending[n:]
        return verdicts

    def _fits(self, window: Reservation) -> int:
        """How many runs like ``window`` its span still has free GPUs for."""
        x0 = self.grid.to_x(window.start)
        a, b = span(x0, self.grid.to_x(window.end) - x0, self.free.shape[1])
        return int(self.free[self._row[window.region], a:b].min()) // window.gpus

    def release(self, job_id: str) -> None:
        """Give back what an admitted job reserved (it was cancelled before the next cycle)."""
        held = self.admitted.pop(job_id, None)
        if held is not None:
            self._take(held, sign=-1)

    def _decide(self, job: PlanningJob, now: datetime) -> Verdict:
        step = float(self.grid.step_s)
        d = max(job.duration_s, MIN_DURATION_S) / step
        x_e = self.grid.to_x(max(now, job.earliest_start))
        cap_x = self.grid.to_x(now) + HORIZON_CAP_S / step
        x_l = math.inf if job.deadline is None else self.grid.to_x(job.deadline) - d
        # A deadline exactly one duration away (max_delay_s=0) must pass: slot positions are
        # floats, so allow a microsecond of rounding.
        if x_l < x_e - 1e-6 / step:
            return Verdict(
                reason=f"deadline {_iso(job.deadline)} is before the earliest "
                f"possible end {_iso(self.grid.to_time(x_e + d))}"
            )
        x_l = max(x_l, x_e)
        rows = self._rows(job)
        if not rows.size:
            return Verdict(reason="no allowed region is configured")
        most = int(self._capacity[rows].max())
        if job.gpus > most:
            return Verdict(
                reason=f"needs {job.gpus} GPUs; the most any allowed region has is {most}"
            )
        last = min(x_l, cap_x)
        self._ensure(math.ceil(max(last, x_e) + d) + 1)
        starts = candidate_starts(x_e, last, max(x_e, self.free.shape[1] - d))
        costs = self._run_costs(rows, starts, d)
        priced = np.isfinite(costs)
        if not priced.any():
            costs, priced = np.zeros_like(costs), np.ones_like(priced)  # runs now, unpriced
        if job.gpus <= 0:
            return Verdict(reason=None)
        soft = CapacityLedger(self.free).feasible(rows, starts, d, job.gpus) & priced
        if soft.any():
            best = np.unravel_index(int(np.argmin(np.where(soft, costs, np.inf))), soft.shape)
            row, x = int(rows[int(best[0])]), float(starts[int(best[1])])
            return Verdict(reason=None, window=self._window(job, row, x, d))
        hard = CapacityLedger(self.hard).feasible(rows, starts, d, job.gpus) & priced
        if hard.any():
            col = int(np.flatnonzero(hard.any(axis=0))[0])
            row = int(rows[int(np.argmax(hard[:, col]))])
            return Verdict(
                reason=None, window=self._window(job, row, float(starts[col]), d), overbooked=True
            )
        return Verdict(
            reason=f"cannot meet its deadline with current capacity: no "
            f"{job.gpus} free GPU(s) in an allowed region for "
            f"{job.duration_s:.0f} s before {_iso(job.deadline)}"
        )

    # --- internals --------------------------------------------------------------------------

    def _rows(self, job: PlanningJob) -> IntArray:
        named = [self._row[n] for n in job.allowed_regions if n in self._row]
        named = named or list(range(len(self.regions)))
        home = self._row.get(job.home_region, -1)
        ordered = ([home] if home in named else []) + [r for r in named if r != home]
        return np.array(ordered, dtype=np.int64)

    def _window(self, job: PlanningJob, row: int, x: float, d: float) -> Reservation:
        return Reservation(
            job_id=job.id,
            region=self.regions[row].name,
            gpus=job.gpus,
            start=self.grid.to_time(float(x)),
            end=self.grid.to_time(float(x) + d),
        )

    def _take(self, held: Reservation, sign: int = 1) -> None:
        row = self._row.get(held.region)
        if row is None or held.gpus <= 0:
            return
        x0 = self.grid.to_x(held.start)
        self._ensure(math.ceil(self.grid.to_x(held.end)) + 1)
        a, b = span(x0, self.grid.to_x(held.end) - x0, self.free.shape[1])
        if b > a:
            self.free[row, a:b] -= sign * held.gpus

    def _take_all(self, held: Iterable[Reservation]) -> None:
        """``_take`` for many at once: one difference array, one cumulative sum (a cycle's
        100,000 plans in milliseconds rather than one numpy call each)."""
        held = [h for h in held if h.gpus > 0 and h.region in self._row]
        if not held:
            return
        origin_s, step = self.grid.origin.timestamp(), float(self.grid.step_s)
        x0 = (np.array([h.start.timestamp() for h in held]) - origin_s) / step
        x1 = (np.array([h.end.timestamp() for h in held]) - origin_s) / step
        self._ensure(math.ceil(float(x1.max())) + 1)
        n = self.free.shape[1]
        a = np.clip(np.floor(x0 + SPAN_EPS).astype(np.int64), 0, n)
        b = np.clip(
            np.maximum(
                np.floor(x0 + SPAN_EPS).astype(np.int64) + 1,
                np.ceil(x1 - SPAN_EPS).astype(np.int64),
            ),
            0,
            n,
        )
        rows = np.array([self._row[h.region] for h in held], dtype=np.int64)
        gpus = np.array([h.gpus for h in held], dtype=np.int64)
        keep = b > a
        diff = np.zeros((len(self.regions), n + 1), dtype=np.int64)
        np.add.at(diff, (rows[keep], a[keep]), gpus[keep])
        np.add.at(diff, (rows[keep], b[keep]), -gpus[keep])
        self.free -= np.cumsum(diff, axis=1)[:, :n]

    def _run_costs(self, rows: IntArray, starts: FloatArray, d: float) -> FloatArray:
        """``window.run_costs`` for several rows at once, times each row's PUE, on prefix sums
        kept between calls (a submit then costs O(candidates), not O(horizon))."""
        if self._prefix is None:
            zero = np.zeros((len(self.regions), 1))
            self._padded = np.concatenate((np.nan_to_num(self.prices, nan=0.0), zero), axis=1)
            self._prefix = np.concatenate((zero, np.cumsum(self._padded, axis=1)), axis=1)
            self._nans = np.concatenate(
                (zero.astype(np.int64), np.cumsum(np.isnan(self.prices), axis=1)), axis=1
            )
        n = self.prices.shape[1]
        ends = starts + d
        inside = (starts >= 0) & (ends <= n + 1e-9)
        s, e = np.clip(starts, 0, n), np.clip(ends, 0, n)
        fs, fe = np.floor(s).astype(np.int64), np.floor(e).astype(np.int64)
        prefix, padded, nans = self._prefix[rows], self._padded[rows], self._nans[rows]
        cost = (prefix[:, fe] + (e - fe) * padded[:, fe]) - (
            prefix[:, fs] + (s - fs) * padded[:, fs]
        )
        last = np.maximum(np.ceil(e - 1e-9).astype(np.int64), fs)
        touched_nan = (nans[:, last] - nans[:, fs]) > 0
        out: FloatArray = np.where(inside & ~touched_nan, cost, np.nan) * self._pue[rows][:, None]
        return out

    def _ensure(self, n_slots: int) -> None:
        """Grow the arrays to ``n_slots`` (free and unbooked, unpriced past the old end)."""
        have = self.free.shape[1]
        if n_slots <= have:
            return
        extra = n_slots - have
        fill = np.repeat(self._capacity[:, None], extra, axis=1)
        self.free = np.concatenate((self.free, fill), axis=1)
        self.hard = np.concatenate((self.hard, fill.copy()), axis=1)
        self.prices = np.concatenate(
            (self.prices, np.full((len(self.regions), extra), self._fill_price)), axis=1
        )
        self.grid = PlanningGrid(origin=self.grid.origin, step_s=self.grid.step_s, n_slots=n_slots)
        self._prefix = None  # prices grew: the prefix sums are rebuilt on next use


def _iso(when: datetime | None) -> str:
    return "never" if when is None else when.isoformat()


def reservations(
    plans: Mapping[str, tuple[str, int, Sequence[tuple[datetime, datetime]]]],
) -> list[Reservation]:
    """Reservations from ``{job_id: (region, gpus, windows)}`` (a cycle's plans)."""
    return [
        Reservation(job_id=job_id, region=region, gpus=gpus, start=start, end=end)
        for job_id, (region, gpus, windows) in plans.items()
        for start, end in windows
        if gpus > 0
    ]


__all__ = ["AdmissionLedger", "Reservation", "Verdict", "reservations"]
