"""Plan stability: which jobs keep their current plan as it is, without being placed again.

A job keeps its plan when nothing it was planned on has changed in a way that matters:

* its policy scores by emissions (``lowest-window``, ``wait-awhile``, ``greenlight``), it runs
  as one window (not interruptible, not a deployment) and the plan carries no core note;
* the plan's region is still allowed, up and priced, and the plan still starts no later than its
  latest start (the deadline), inside the forecast's window and on the grid (a plan whose
  start has passed is due: it counts from now);
* no series of a region it may use was issued after the plan was made (a new forecast may open
  a cheaper window: the job is placed again, where ``policies.STABILITY_MARGIN`` still favours
  its plan), and the plan's emissions on this cycle's forecast moved by at most
  ``max(DRIFT_G, DRIFT_SHARE x emissions)``;
* its GPUs are still free: kept jobs take their capacity first, least slack first, and one that
  no longer fits is placed again;
* it emits no more on the forecast than running now at home would, or running now at home has
  no free GPUs (the run-now guarantee, as the placement holds it: ``run_now_frees``).

Everything else (new jobs, changed jobs, jobs whose plan became infeasible) is placed around the
kept jobs by the usual pipeline, so a cycle over a large queue with a few arrivals places only
those: re-planning an unchanged snapshot changes no plan, and costs little. Pure: no clock.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from scheduler.domain import Policy
from scheduler.planning.capacity import CapacityLedger, held, spans
from scheduler.planning.grid import BoolArray, FloatArray, IntArray
from scheduler.planning.kernels import take_in_order
from scheduler.planning.placement import FORCED_NOTE, UNPRICED_NOTE
from scheduler.planning.plans import BASELINE_UNPRICED_NOTE
from scheduler.planning.policies import HOME_ONLY, Books
from scheduler.planning.prices import PriceBook
from scheduler.planning.table import JobTable

# A plan whose emissions on the forecast moved by no more than this is still the same plan.
DRIFT_G = 1.0
DRIFT_SHARE = 0.01
# Policies whose plans are kept: scored by emissions alone, so an unchanged forecast means an
# unchanged best window (``now`` and ``carbon-time`` score against the moving present).
KEEPABLE = frozenset({Policy.LOWEST_WINDOW, Policy.WAIT_AWHILE, Policy.GREENLIGHT})
# Notes the core writes on plans that are not a plain forecast optimum: such plans are redone.
CORE_NOTES = (FORCED_NOTE, UNPRICED_NOTE, BASELINE_UNPRICED_NOTE, "forecast error margin")
# Seconds by which a plan's window may differ from the job's duration and still be its plan.
DURATION_TOL_S = 1.0


def kept_jobs(table: JobTable, books: Books) -> tuple[BoolArray, IntArray, FloatArray, BoolArray]:
    """``(keep, row, start_x, worse)``: which jobs may keep their current plan on this
    snapshot's data (capacity aside: see ``take_kept``), that plan's row and start in slots,
    and which of them emit more than running now at home (see ``run_now_frees``)."""
    n = len(table)
    keep = np.zeros(n, dtype=np.bool_)
    row = np.full(n, -1, dtype=np.int64)
    start_x = np.full(n, np.nan)
    old_g = np.full(n, np.nan)
    planned_s = np.full(n, np.nan)
    index = {name: i for i, name in enumerate(table.regions)}
    grid = table.grid
    origin_s = grid.origin.timestamp()
    for j, job in enumerate(table.jobs):
        plan = job.current_plan
        if (
            plan is None
            or job.policy not in KEEPABLE
            or job.interruptible
            or len(plan.windows) != 1
            or (plan.note is not None and any(n in plan.note for n in CORE_NOTES))
        ):
            continue
        r = index.get(plan.region, -1)
        window = plan.windows[0]
        if r < 0 or abs((window.end - window.start).total_seconds() - job.duration_s) > (
            DURATION_TOL_S
        ):
            continue
        keep[j], row[j] = True, r
        # A plan whose start has passed is due: it holds its GPUs from now on (the dispatcher
        # takes it; placing it again would only say "now" once more).
        start_x[j] = max((window.start.timestamp() - origin_s) / grid.step_s, table.x_e[j])
        old_g[j] = plan.forecast_emissions_g
        planned_s[j] = plan.planned_at.timestamp()
    worse = np.zeros(n, dtype=np.bool_)
    if not keep.any():
        return keep, row, start_x, worse
    jobs = np.flatnonzero(keep)
    for policy in KEEPABLE:
        of = jobs[np.array([table.policy[j] is policy for j in jobs.tolist()], dtype=np.bool_)]
        if of.size:
            keep[of], worse[of] = _still_good(
                table, books, policy, of, row, start_x, old_g, planned_s
            )
    return keep, row, start_x, worse & keep


def _still_good(
    table: JobTable,
    books: Books,
    policy: Policy,
    jobs: IntArray,
    row: IntArray,
    start_x: FloatArray,
    old_g: FloatArray,
    planned_s: FloatArray,
) -> tuple[BoolArray, BoolArray]:
    """The module docstring's conditions, but capacity and run-now, for ``jobs`` (all of
    ``policy``); and whether each emits more than running now at home."""
    book, report = books.planning(policy), books.reporting(policy)
    r, x, d = row[jobs], start_x[jobs], table.d[jobs]
    home = table.home[jobs]
    allowed = np.array(
        [r_ in table.allowed[j] for j, r_ in zip(jobs.tolist(), r.tolist(), strict=True)],
        dtype=np.bool_,
    )
    if policy in HOME_ONLY:
        allowed &= r == home
    ok = (
        allowed
        & book.priced[r]
        & report.priced[r]
        & (x >= table.x_e[jobs] - 1e-9)
        & (x <= table.x_l[jobs] + 1e-9)
        & (x < book.start_end[r])
        & (x + d <= table.grid.n_slots + 1e-9)
    )
    issued = _latest_issue_s(table, book, jobs)
    ok &= issued <= planned_s[jobs]
    safe_r = np.where(ok, r, 0)
    safe_x = np.where(ok, x, 0.0)
    scale = table.power_kw[jobs] * report.grid.step_h
    new_g = scale * report.pue[safe_r] * report.pointwise_cost(safe_r, safe_x, np.where(ok, d, 0))
    ok &= np.abs(new_g - old_g[jobs]) <= np.maximum(DRIFT_G, DRIFT_SHARE * np.abs(old_g[jobs]))
    home_ok = (home >= 0) & report.priced[np.maximum(home, 0)]
    safe_h = np.maximum(home, 0)
    now_g = (
        scale
        * report.pue[safe_h]
        * report.pointwise_cost(safe_h, table.x_e[jobs], np.where(home_ok, d, 0))
    )
    worse: BoolArray = home_ok & (new_g > now_g * (1 + 1e-9) + 1e-9)
    out: BoolArray = ok
    return out, worse


def _latest_issue_s(table: JobTable, book: PriceBook, jobs: IntArray) -> FloatArray:
    """Per job, the latest issue time (epoch s) of the series of the regions it may use."""
    per_row = np.array(
        [-math.inf if t is None else t.timestamp() for t in book.issued_at], dtype=np.float64
    )
    cache: dict[int, float] = {}
    out = np.empty(len(jobs))
    for k, j in enumerate(jobs.tolist()):
        rows = table.allowed[j]
        key = id(rows)
        latest = cache.get(key)
        if latest is None:
            latest = cache[key] = float(per_row[rows].max()) if rows.size else -math.inf
        out[k] = latest
    return out


def take_kept(
    table: JobTable, ledger: CapacityLedger, keep: BoolArray, row: IntArray, start_x: FloatArray
) -> BoolArray:
    """Take the kept jobs' GPUs from ``ledger`` (in place) and return the jobs that fit: all of
    ``keep`` at once when no slot goes short, else one by one, least slack first, a job that
    does not fit dropping out of ``keep``.

    Only the jobs touching a slot that goes short need the one-by-one pass: before any other
    job's turn the ledger holds at least ``free`` less every other kept job, so a job whose
    slots all stay non-negative with every kept job taken fits whatever the order. Those are
    taken at once and the pass, compiled, runs over the rest (33,000 of 98,000 on the bench
    when a clock step moved due plans onto the first slots)."""
    jobs = np.flatnonzero(keep & (table.gpus > 0))
    lo, hi = spans(start_x[jobs], table.d[jobs], ledger.n_slots)
    after = ledger.free - held(ledger.free.shape, row[jobs], lo, hi, table.gpus[jobs])
    short = (after < 0) & (after < ledger.free)  # a slot some kept job goes short in
    out = keep.copy()
    if not short.any():
        ledger.assign(after)
        return out
    prefix = np.zeros((short.shape[0], short.shape[1] + 1), dtype=np.int64)
    np.cumsum(short, axis=1, out=prefix[:, 1:])
    r = row[jobs]
    clash = prefix[r, hi] > prefix[r, lo]
    calm = jobs[~clash]
    ledger.assign(
        ledger.free - held(ledger.free.shape, r[~clash], lo[~clash], hi[~clash], table.gpus[calm])
    )
    contested = np.zeros(len(table), dtype=np.bool_)
    contested[jobs[clash]] = True
    turn = table.order()
    turn = turn[contested[turn]]
    lo, hi = spans(start_x[turn], table.d[turn], ledger.n_slots)
    free = ledger.free.copy()
    took = take_in_order(free, row[turn], lo, hi, table.gpus[turn])
    ledger.assign(free)
    out[turn[~took]] = False
    return out


def run_now_frees(
    table: JobTable,
    ledger: CapacityLedger,
    keep: BoolArray,
    worse: BoolArray,
    row: IntArray,
    start_x: FloatArray,
) -> BoolArray:
    """``keep`` less the kept jobs that emit more than running now at home where running now
    at home has free GPUs once they let go of theirs (released in ``ledger``): the placement
    would move them there (``improve.guard_run_now``), so they are placed again."""
    out = keep.copy()
    for j in np.flatnonzero(keep & worse).tolist():
        x, d, gpus = float(start_x[j]), float(table.d[j]), int(table.gpus[j])
        ledger.release(int(row[j]), x, d, gpus)
        if ledger.fits(int(table.home[j]), float(table.x_e[j]), d, gpus):
            out[j] = False
        else:
            ledger.take(int(row[j]), x, d, gpus)
    return out


def subset(table: JobTable, jobs: IntArray) -> JobTable:
    """The rows ``jobs`` of ``table``, on the same grid (so the price books still apply)."""
    return replace(
        table,
        jobs=tuple(table.jobs[j] for j in jobs.tolist()),
        x_e=table.x_e[jobs],
        x_l=table.x_l[jobs],
        x_b=table.x_b[jobs],
        d=table.d[jobs],
        gpus=table.gpus[jobs],
        power_kw=table.power_kw[jobs],
        weight_kw=table.weight_kw[jobs],
        home=table.home[jobs],
        allowed=tuple(table.allowed[j] for j in jobs.tolist()),
        deployment=table.deployment[jobs],
        interruptible=table.interruptible[jobs],
        priority=table.priority[jobs],
        policy=tuple(table.policy[j] for j in jobs.tolist()),
    )
