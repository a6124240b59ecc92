"""Every job's best candidate at once, capacity aside: the greedy's fast path.

The greedy needs, per job, the best ``(region, start)`` under its policy; only when that one has
no free GPUs does it look further (``Placer.best_index``). Computing the first choice job by
job costs a dozen numpy calls each; here it is computed for chunks of jobs as one
``(jobs, starts, regions)`` tensor of run costs from the price book's prefix sums, with the same
scores, exclusions, stability bonus and tie-breaking (earliest start, then home, then region
order) as ``scheduler.planning.policies.candidates``. Jobs it does not cover (run-now policy,
deployments, Carbon-Time, jobs with no priced region, late jobs) get row ``-2`` and take the
per-job path.
"""

from __future__ import annotations

import numpy as np

from scheduler.domain import Policy
from scheduler.planning.grid import BoolArray, FloatArray, IntArray
from scheduler.planning.policies import (
    HOME_ONLY,
    STABILITY_MARGIN,
    Books,
    CurrentPlans,
)
from scheduler.planning.prices import PriceBook
from scheduler.planning.table import JobTable
from scheduler.planning.window import TIE_RTOL

PER_JOB = -2
CHUNK_ELEMENTS = 1_000_000
BATCHED = frozenset({Policy.LOWEST_WINDOW, Policy.WAIT_AWHILE, Policy.GREENLIGHT,
                     Policy.ORACLE})


def first_choices(
    table: JobTable, books: Books, current: CurrentPlans,
) -> tuple[IntArray, FloatArray, FloatArray]:
    """``(row, start_x, score)`` of every job's best candidate (row ``PER_JOB`` = not here)."""
    n = len(table)
    row = np.full(n, PER_JOB, dtype=np.int64)
    start = np.zeros(n)
    score = np.full(n, np.inf)
    for policy in sorted(BATCHED):
        book = books.planning(policy)
        allowed = _allowed_mask(table, book, policy)
        jobs = np.flatnonzero(np.array([p is policy for p in table.policy], dtype=np.bool_)
                              & ~table.deployment & allowed.any(axis=1))
        if jobs.size == 0:
            continue
        k_last = _last_starts(table, book, allowed, jobs)
        ok = table.x_l[jobs] >= table.x_e[jobs]
        jobs, k_last = jobs[ok], k_last[ok]
        width = k_last - np.floor(table.x_e[jobs]).astype(np.int64)
        order = np.argsort(width, kind="stable")
        jobs, k_last, width = jobs[order], k_last[order], width[order]
        _chunks(table, book, current, allowed, jobs, k_last, width, (row, start, score))
    return row, start, score


def _allowed_mask(table: JobTable, book: PriceBook, policy: Policy) -> BoolArray:
    mask = np.zeros((len(table), len(table.regions)), dtype=np.bool_)
    if policy in HOME_ONLY:
        for j in range(len(table)):
            home = int(table.home[j])
            if home >= 0 and home in table.allowed[j]:
                mask[j, home] = True
    else:
        for j, rows in enumerate(table.allowed):
            mask[j, rows] = True
    mask &= book.priced[None, :]
    return mask


def _last_starts(
    table: JobTable, book: PriceBook, allowed: BoolArray, jobs: IntArray,
) -> IntArray:
    """The last slot-boundary start of each job (below ``floor(x_e)`` + 1 when none)."""
    reach = np.where(allowed[jobs], book.start_end[None, :], 0).max(axis=1) - 1.0
    last = np.minimum(np.minimum(table.x_l[jobs], book.grid.n_slots - table.d[jobs]), reach)
    k_last: IntArray = np.maximum(np.floor(last + 1e-9), np.floor(table.x_e[jobs])).astype(
        np.int64)
    return k_last


def _chunks(
    table: JobTable, book: PriceBook, current: CurrentPlans, allowed: BoolArray,
    jobs: IntArray, k_last: IntArray, width: IntArray,
    out: tuple[IntArray, FloatArray, FloatArray],
) -> None:
    n_regions = len(table.regions)
    prefix_t = np.ascontiguousarray(book.prefix.T)
    values_t = np.ascontiguousarray(book.values.T)
    lo = 0
    while lo < len(jobs):
        per_job = (int(width[min(len(jobs) - 1, lo)]) + 1) * n_regions
        hi = lo + 1
        while hi < len(jobs) and (hi - lo + 1) * (int(width[hi]) + 1) * n_regions \
                <= max(CHUNK_ELEMENTS, per_job):
            hi += 1
        _chunk(table, book, current, allowed, jobs[lo:hi], int(width[hi - 1]),
               (prefix_t, values_t), out)
        lo = hi


def _chunk(
    table: JobTable, book: PriceBook, current: CurrentPlans, allowed: BoolArray,
    jobs: IntArray, width: int, transposed: tuple[FloatArray, FloatArray],
    out: tuple[IntArray, FloatArray, FloatArray],
) -> None:
    prefix_t, values_t = transposed
    x_e, d = table.x_e[jobs], table.d[jobs]
    k0 = np.floor(x_e).astype(np.int64)
    n = np.floor(d).astype(np.int64)
    f = d - n
    n_slots = book.grid.n_slots
    # Starts: x_e, then k0 + 1 ... k0 + width (masked past each job's own last start).
    ks = k0[:, None] + np.arange(1, width + 1)[None, :]
    last = np.floor(np.minimum(np.minimum(table.x_l[jobs], n_slots - d),
                               np.where(allowed[jobs], book.start_end[None, :], 0).max(axis=1)
                               - 1.0) + 1e-9)
    valid = ks <= last[:, None]
    ks = np.minimum(ks, n_slots - n[:, None])
    ends = ks + n[:, None]
    cost = np.empty((len(jobs), width + 1, prefix_t.shape[1]))
    cost[:, 1:, :] = (prefix_t[ends] + f[:, None, None] * values_t[ends] - prefix_t[ks])
    y = x_e + d
    fy = np.floor(y).astype(np.int64)
    cost[:, 0, :] = (prefix_t[fy] + (y - fy)[:, None] * values_t[fy]
                     - prefix_t[k0] - (x_e - k0)[:, None] * values_t[k0])
    cost *= (table.weight_kw[jobs] * book.grid.step_h)[:, None, None] * book.pue[None, None, :]
    starts = np.concatenate((x_e[:, None], ks.astype(np.float64)), axis=1)
    excluded = ~allowed[jobs][:, None, :] | (starts[:, :, None] >= book.start_end[None, None, :])
    excluded[:, 1:, :] |= ~valid[:, :, None]
    cost[excluded] = np.inf
    _bonus(cost, starts, current, jobs)
    _pick(table, jobs, cost, starts, out)


def _bonus(cost: FloatArray, starts: FloatArray, current: CurrentPlans, jobs: IntArray) -> None:
    rows = current.row[jobs]
    has = np.flatnonzero(rows >= 0)
    if has.size == 0:
        return
    hit = np.abs(starts[has] - current.start_x[jobs[has]][:, None]) < 1e-6
    found = hit.any(axis=1)
    has, w = has[found], np.argmax(hit[found], axis=1)
    r = rows[has]
    vals = cost[has, w, r]
    cost[has, w, r] = np.where(np.isfinite(vals) & (vals > 0), vals * (1 - STABILITY_MARGIN),
                               vals)


def _pick(
    table: JobTable, jobs: IntArray, cost: FloatArray, starts: FloatArray,
    out: tuple[IntArray, FloatArray, FloatArray],
) -> None:
    row_out, start_out, score_out = out
    n_jobs, n_starts, n_regions = cost.shape
    best = cost.reshape(n_jobs, -1).min(axis=1)
    finite = np.isfinite(best)
    ok = cost <= (best + TIE_RTOL * np.maximum(1.0, np.abs(best)))[:, None, None]
    w = np.argmax(ok.any(axis=2), axis=1)
    at_w = ok[np.arange(n_jobs), w]
    home = table.home[jobs]
    home_ok = (home >= 0) & at_w[np.arange(n_jobs), np.maximum(home, 0)]
    r = np.where(home_ok, home, np.argmax(at_w, axis=1))
    sel = jobs[finite]
    row_out[sel] = r[finite]
    start_out[sel] = starts[np.arange(n_jobs), w][finite]
    score_out[sel] = cost[np.arange(n_jobs), w, r][finite]
