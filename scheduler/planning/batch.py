"""Many jobs' best feasible candidates at once: the greedy's fast path.

Choosing job by job costs a dozen numpy calls each. Here the choice is computed for a block of
jobs as one ``(jobs, starts, regions)`` tensor of run costs (prefix sums of the price book) and
of free-GPU checks (prefix counts of the slots short of each job's GPUs), against the ledger as
it stands at the start of the block, with the same scores, exclusions, stability bonus and
tie-breaking (earliest start, then home, then region order) as
``scheduler.planning.policies.candidates``. The greedy commits these choices in order; a choice
still free when its turn comes is exactly what the one-by-one greedy would take (the feasible
set only shrank and the choice is still in it). Jobs not covered here (run-now policy,
deployments, Carbon-Time, jobs with no priced region, late jobs, jobs that fit nowhere) get row
``PER_JOB`` and take the per-job path.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scheduler.domain import Policy
from scheduler.planning.capacity import SPAN_EPS, CapacityLedger
from scheduler.planning.grid import BoolArray, FloatArray, IntArray
from scheduler.planning.kernels import BlockArrays
from scheduler.planning.policies import (
    HOME_ONLY,
    STABILITY_MARGIN,
    Books,
    CurrentPlans,
    wait_costs,
)
from scheduler.planning.prices import PriceBook
from scheduler.planning.table import JobTable
from scheduler.planning.window import TIE_RTOL

PER_JOB = -2
CHUNK_ELEMENTS = 600_000
BATCHED = (Policy.LOWEST_WINDOW, Policy.WAIT_AWHILE, Policy.GREENLIGHT, Policy.ORACLE)


@dataclass(frozen=True, slots=True)
class Choices:
    """Per job of a block: the block-start choice (row ``PER_JOB`` when the per-job path
    takes the job; start index ``w`` into its chunk's starts), whether capacity kept the job
    from its best candidate, and where its candidate tensors are (``chunk``, ``pos``); per
    chunk the ``(jobs, starts, regions)`` scores, starts and slot spans ``[a, b)``, which
    ``kernels.commit_run`` reads to choose again when an earlier job took the choice."""

    row: IntArray
    w: IntArray
    displaced: BoolArray
    chunk: IntArray
    pos: IntArray
    chunks: list[tuple[FloatArray, FloatArray, IntArray, IntArray]]

    def block_arrays(self, table: JobTable, jobs: IntArray) -> BlockArrays | None:
        """The block's candidates flattened for the compiled loop (None when every job takes
        the per-job path)."""
        if not self.chunks:
            return None
        widths = [c[1].shape[1] for c in self.chunks]
        sizes = [c[1].shape[0] for c in self.chunks]
        base = np.concatenate(([0], np.cumsum(np.multiply(widths, sizes))[:-1]))
        width = np.asarray(widths, dtype=np.int64)[self.chunk]
        return BlockArrays(
            gpus=np.ascontiguousarray(table.gpus[jobs]),
            home=np.ascontiguousarray(table.home[jobs]),
            first_w=self.w,
            first_row=self.row,
            offset=base[self.chunk] + self.pos * width,
            width=width,
            cost=np.concatenate([c[0].ravel() for c in self.chunks]),
            starts=np.concatenate([c[1].ravel() for c in self.chunks]),
            span_a=np.concatenate([c[2].ravel() for c in self.chunks]),
            span_b=np.concatenate([c[3].ravel() for c in self.chunks]),
        )


class BatchChooser:
    """Precomputed per-job geometry and transposed price books for block choices."""

    def __init__(self, table: JobTable, books: Books, current: CurrentPlans) -> None:
        self.table = table
        self.current = current
        n = len(table)
        self.book_of = np.full(n, -1, dtype=np.int64)
        self.books: list[tuple[PriceBook, FloatArray, FloatArray]] = []
        self.allowed = np.zeros((n, len(table.regions)), dtype=np.bool_)
        by_book: dict[int, int] = {}
        for policy in BATCHED:
            book = books.planning(policy)
            jobs = np.flatnonzero(
                np.array([p is policy for p in table.policy], dtype=np.bool_) & ~table.deployment
            )
            if jobs.size == 0:
                continue
            key = by_book.setdefault(id(book), len(self.books))
            if key == len(self.books):
                self.books.append(
                    (book, np.ascontiguousarray(book.prefix.T), np.ascontiguousarray(book.values.T))
                )
            self.allowed[jobs] = _allowed_mask(table, book, policy, jobs)
            self.book_of[jobs] = key
        self.k_last = np.zeros(n, dtype=np.int64)
        for key, (book, _, _) in enumerate(self.books):
            jobs = np.flatnonzero(self.book_of == key)
            self.k_last[jobs] = _last_starts(table, book, self.allowed[jobs], jobs)
        self.k0 = np.floor(table.x_e).astype(np.int64)
        eligible = (self.book_of >= 0) & self.allowed.any(axis=1) & (table.x_l >= table.x_e)
        self.book_of[~eligible] = -1

    def choose(self, jobs: IntArray, ledger: CapacityLedger) -> Choices:
        """Best feasible candidate of each job in ``jobs`` against ``ledger`` (arrays aligned
        with ``jobs``)."""
        n = len(jobs)
        out = Choices(
            row=np.full(n, PER_JOB, dtype=np.int64),
            w=np.zeros(n, dtype=np.int64),
            displaced=np.zeros(n, dtype=np.bool_),
            chunk=np.zeros(n, dtype=np.int64),
            pos=np.zeros(n, dtype=np.int64),
            chunks=[],
        )
        for key, (book, prefix_t, values_t) in enumerate(self.books):
            pos = np.flatnonzero(self.book_of[jobs] == key)
            if pos.size == 0:
                continue
            width, reduced = self._widths(book, jobs[pos])
            for part in (pos[~reduced], pos[reduced]):
                part_width = width[np.searchsorted(pos, part)]
                order = np.argsort(part_width, kind="stable")
                part, part_width = part[order], part_width[order]
                lo = 0
                while lo < len(part):
                    hi = _chunk_end(part_width, lo, len(self.table.regions))
                    self._chunk(
                        jobs[part[lo:hi]], part[lo:hi], book, (prefix_t, values_t), ledger, out
                    )
                    lo = hi
        return out

    def choose_block(
        self, jobs: IntArray, ledger: CapacityLedger
    ) -> tuple[Choices, BlockArrays | None]:
        """``choose``, with the candidates flattened for the compiled loop."""
        choice = self.choose(jobs, ledger)
        return choice, choice.block_arrays(self.table, jobs)

    def _widths(self, book: PriceBook, jobs: IntArray) -> tuple[IntArray, BoolArray]:
        """Each job's count of boundary starts, and whether only those next to price breaks
        are kept (the rule of ``policies.break_starts``)."""
        lo, hi = self.k0[jobs] + 1, self.k_last[jobs]
        full = hi - lo + 1
        near = np.searchsorted(book.breaks, hi + self.table.d[jobs] + 1.0) - np.searchsorted(
            book.breaks, lo
        )
        reduced = (full >= 2) & (3 * near + 3 < full)
        width: IntArray = np.where(reduced, 3 * near + 3, np.maximum(full, 0))
        return width, reduced

    def _chunk(
        self,
        jobs: IntArray,
        at: IntArray,
        book: PriceBook,
        transposed: tuple[FloatArray, FloatArray],
        ledger: CapacityLedger,
        out: Choices,
    ) -> None:
        t = self.table
        k0, k_last = self.k0[jobs], self.k_last[jobs]
        n_slots = book.grid.n_slots
        d = t.d[jobs]
        n = np.floor(d).astype(np.int64)
        ks, valid = _boundary_starts(book.breaks, k0 + 1, k_last, d, self.current.start_x[jobs])
        width = ks.shape[1]
        ks = np.minimum(ks, n_slots - n[:, None])
        cost = np.empty((len(jobs), width + 1, len(t.regions)))
        _run_costs(cost, transposed, t.x_e[jobs], d, ks)
        scale = (t.weight_kw[jobs] * book.grid.step_h)[:, None] * book.pue[None, :]
        cost *= scale[:, None, :]
        starts = np.concatenate((t.x_e[jobs][:, None], ks.astype(np.float64)), axis=1)
        usable = (
            self.allowed[jobs][:, None, :]
            & np.concatenate((np.ones((len(jobs), 1), dtype=np.bool_), valid), axis=1)[:, :, None]
        )
        if (book.start_end < n_slots).any():
            usable &= starts[:, :, None] < book.start_end[None, None, :]
        cost = np.where(usable, cost, np.inf)
        extra = wait_costs(t, jobs, starts, book)
        if extra is not None:
            cost += extra[:, :, None]
        _bonus(cost, starts, self.current, jobs)
        free, span_a, span_b = _free_mask(ledger, t.gpus[jobs], starts, d)
        out.chunk[at] = len(out.chunks)
        out.pos[at] = np.arange(len(jobs))
        out.chunks.append((cost, starts, span_a, span_b))
        best_any = cost.reshape(len(jobs), -1).min(axis=1)
        _pick(t, jobs, at, np.where(free, cost, np.inf), best_any, out)


def _boundary_starts(
    breaks: IntArray,
    lo: IntArray,
    hi: IntArray,
    d: FloatArray,
    current_x: FloatArray,
) -> tuple[IntArray, BoolArray]:
    """Each job's boundary starts as rows of a padded matrix, and which entries are real: all
    of ``[lo, hi]``, or only those next to price breaks, by ``policies.break_starts``' rule."""
    first = np.searchsorted(breaks, lo)
    last = np.searchsorted(breaks, hi + d + 1.0)
    near = last - first
    full = hi - lo + 1
    reduced = (full >= 2) & (3 * near + 3 < full)
    if not reduced.any():
        width = max(int(full.max()), 0)
        ks = lo[:, None] + np.arange(width)[None, :]
        return ks, ks <= hi[:, None]
    shared = breaks[int(first.min()) : int(last.max())].astype(np.float64)[None, :]
    shifted = shared - d[:, None]
    whole = np.isfinite(current_x) & (current_x == np.floor(np.nan_to_num(current_x)))
    cand = np.concatenate(
        (
            lo[:, None],
            hi[:, None],
            np.where(whole, current_x, -1.0)[:, None],
            np.broadcast_to(shared, shifted.shape),
            np.floor(shifted),
            np.ceil(shifted),
        ),
        axis=1,
    )
    big = float(np.iinfo(np.int32).max)
    cand = np.where((cand >= lo[:, None]) & (cand <= hi[:, None]), cand, big)
    cand.sort(axis=1)
    cand[:, 1:][cand[:, 1:] == cand[:, :-1]] = big
    cand.sort(axis=1)
    width = int((cand < big).sum(axis=1).max())
    cand = cand[:, :width]
    valid = cand < big
    ks = np.where(valid, cand, lo[:, None]).astype(np.int64)
    return ks, valid


def _run_costs(
    cost: FloatArray,
    transposed: tuple[FloatArray, FloatArray],
    x_e: FloatArray,
    d: FloatArray,
    ks: IntArray,
) -> None:
    """Fill ``cost[:, 0]`` (start ``x_e``) and ``cost[:, 1:]`` (starts ``ks``) with integrated
    intensity, g/kWh x slots."""
    prefix_t, values_t = transposed
    n = np.floor(d).astype(np.int64)
    f = (d - n)[:, None, None]
    ends = ks + n[:, None]
    cost[:, 1:, :] = np.take(prefix_t, ends, axis=0)
    cost[:, 1:, :] += f * np.take(values_t, ends, axis=0)
    cost[:, 1:, :] -= np.take(prefix_t, ks, axis=0)
    y = x_e + d
    fy = np.floor(y).astype(np.int64)
    k0 = np.floor(x_e).astype(np.int64)
    cost[:, 0, :] = (
        prefix_t[fy]
        + (y - fy)[:, None] * values_t[fy]
        - prefix_t[k0]
        - (x_e - k0)[:, None] * values_t[k0]
    )


def _free_mask(
    ledger: CapacityLedger, gpus: IntArray, starts: FloatArray, d: FloatArray
) -> tuple[BoolArray, IntArray, IntArray]:
    """``(jobs, starts, regions)``: every slot of the run has the job's GPUs free; and the
    runs' slot spans ``[a, b)``."""
    n_regions, n_slots = ledger.free.shape
    levels, level_of = np.unique(np.maximum(gpus, 1), return_inverse=True)
    counts = np.zeros((len(levels), n_slots + 1, n_regions), dtype=np.int32)
    for i, g in enumerate(levels):
        np.cumsum((ledger.free < g).T, axis=0, out=counts[i, 1:, :])
    flat = counts.reshape(-1, n_regions)
    a = np.floor(starts + SPAN_EPS).astype(np.int64)
    b = np.minimum(
        np.maximum(a + 1, np.ceil(starts + d[:, None] - SPAN_EPS).astype(np.int64)), n_slots
    )
    a = np.minimum(a, n_slots)
    base = (level_of * (n_slots + 1))[:, None]
    ok: BoolArray = np.take(flat, base + b, axis=0) == np.take(flat, base + a, axis=0)
    ok |= (gpus <= 0)[:, None, None]
    return ok, a, b


def _chunk_end(width_of: IntArray, lo: int, n_regions: int) -> int:
    """End of the chunk from ``lo`` (jobs sorted by width) keeping it near CHUNK_ELEMENTS."""
    per_job = (width_of + 1) * n_regions
    limit = max(CHUNK_ELEMENTS, int(per_job[lo]))
    # Sorted by width: the chunk's size is its count times its last (widest) member's width.
    count = np.arange(1, len(width_of) - lo + 1)
    fits = count * per_job[lo:] <= limit
    return lo + max(1, int(np.argmin(fits)) if not fits.all() else len(count))


def _allowed_mask(table: JobTable, book: PriceBook, policy: Policy, jobs: IntArray) -> BoolArray:
    mask = np.zeros((len(jobs), len(table.regions)), dtype=np.bool_)
    for i, j in enumerate(jobs):
        rows = table.allowed[j]
        if policy in HOME_ONLY:
            home = int(table.home[j])
            if home >= 0 and home in rows:
                mask[i, home] = True
        else:
            mask[i, rows] = True
    out: BoolArray = mask & book.priced[None, :]
    return out


def _last_starts(
    table: JobTable,
    book: PriceBook,
    allowed: BoolArray,
    jobs: IntArray,
) -> IntArray:
    """The last slot-boundary start of each job (``floor(x_e)`` when it has none)."""
    reach = np.where(allowed, book.start_end[None, :], 0).max(axis=1) - 1.0
    last = np.minimum(np.minimum(table.x_l[jobs], book.grid.n_slots - table.d[jobs]), reach)
    k_last: IntArray = np.maximum(np.floor(last + 1e-9), np.floor(table.x_e[jobs])).astype(np.int64)
    return k_last


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
    cost[has, w, r] = np.where(np.isfinite(vals) & (vals > 0), vals * (1 - STABILITY_MARGIN), vals)


def _pick(
    table: JobTable,
    jobs: IntArray,
    at: IntArray,
    cost: FloatArray,
    best_any: FloatArray,
    out: Choices,
) -> None:
    """Record each job's best finite candidate in ``out`` (ties: earliest start, then home,
    then region order)."""
    n_jobs = cost.shape[0]
    flat = cost.reshape(n_jobs, -1)
    best = flat.min(axis=1)
    finite = np.isfinite(best)
    ok = cost <= (best + TIE_RTOL * np.maximum(1.0, np.abs(best)))[:, None, None]
    w = np.argmax(ok.any(axis=2), axis=1)
    idx = np.arange(n_jobs)
    at_w = ok[idx, w]
    home = table.home[jobs]
    home_ok = (home >= 0) & at_w[idx, np.maximum(home, 0)]
    r = np.where(home_ok, home, np.argmax(at_w, axis=1))
    sel = at[finite]
    out.row[sel] = r[finite]
    out.w[sel] = w[finite]
    tol = TIE_RTOL * np.maximum(1.0, np.abs(best_any))
    out.displaced[sel] = (best > best_any + tol)[finite]
