"""The greedy's sequential inner loop, compiled (numba): commit a block of jobs in order.

Why compiled: under contention most jobs of a block find their block-start choice taken by an
earlier job of the block (they all want the same clean hours) and must skip the candidates
those jobs filled, a median of ~20 deep on the 10k-job benchmark. In numpy that is a dozen
calls per job whatever the depth (~60 µs); as a loop it is a few µs. The loop releases the GIL,
so the next block's candidate tensors are built on another core meanwhile
(``placement.Placer.place_all``). Flat arrays, not lists of chunks: a numba typed list
compiles on first use in every process (~1 s); these signatures are cached on disk.

The rules are the per-job greedy's (``placement.pick``): the lowest score among candidates
whose every slot has the job's GPUs free; ties within a relative ``rtol`` go to the earliest
start, then to the home row, then to the first row.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numba import njit

from scheduler.planning.grid import BoolArray, FloatArray, IntArray


def _span_free(free: IntArray, row: int, a: int, b: int, gpus: int) -> bool:
    for k in range(a, b):  # noqa: SIM110 (a plain loop compiles to the tightest code)
        if free[row, k] < gpus:
            return False
    return True


def _best_free(
    free: IntArray,
    cost: FloatArray,
    span_a: IntArray,
    span_b: IntArray,
    n_r: int,
    gpus: int,
    home: int,
    rtol: float,
) -> tuple[int, int]:
    """``(start index, row)`` of the best free candidate of ``cost[start * n_r + row]``, or
    ``(-1, -1)``. A span is checked only for a score that would improve on the best free one
    found so far, so full cheap candidates cost one short scan each."""
    n_w = len(span_a)
    best = np.inf
    for w in range(n_w):
        a, b = span_a[w], span_b[w]
        for r in range(n_r):
            s = cost[w * n_r + r]
            if s < best and (gpus <= 0 or _span_free(free, r, a, b, gpus)):
                best = s
    if best == np.inf:
        return -1, -1
    limit = best + rtol * max(1.0, abs(best))
    for w in range(n_w):
        a, b = span_a[w], span_b[w]
        if (
            home >= 0
            and cost[w * n_r + home] <= limit
            and (gpus <= 0 or _span_free(free, home, a, b, gpus))
        ):
            return w, home
        for r in range(n_r):
            if cost[w * n_r + r] <= limit and (gpus <= 0 or _span_free(free, r, a, b, gpus)):
                return w, r
    return -1, -1


def _commit_run(
    free: IntArray,
    first: int,
    jobs: IntArray,
    gpus: IntArray,
    home: IntArray,
    first_w: IntArray,
    first_row: IntArray,
    offset: IntArray,
    width: IntArray,
    cost: FloatArray,
    starts: FloatArray,
    span_a: IntArray,
    span_b: IntArray,
    rtol: float,
    out_row: IntArray,
    out_start: FloatArray,
    out_score: FloatArray,
    displaced: BoolArray,
) -> int:
    """Commit jobs ``first, first + 1, ...`` of the block; returns the index of the first job
    it cannot place (no candidate row, or none free: the caller's per-job path takes it), or
    the block's length. Job ``k``'s starts are ``starts[offset[k] : offset[k] + width[k]]``
    (spans likewise) and its scores ``cost[offset[k] * n_r : ...]``, start-major."""
    n_r = free.shape[0]
    for k in range(first, len(jobs)):
        r = first_row[k]
        if r < 0:
            return k
        o, n_w, g = offset[k], width[k], gpus[k]
        sa, sb = span_a[o : o + n_w], span_b[o : o + n_w]
        job_cost = cost[o * n_r : (o + n_w) * n_r]
        w = first_w[k]
        if not (g <= 0 or _span_free(free, r, sa[w], sb[w], g)):
            w, r = _best_free(free, job_cost, sa, sb, n_r, g, home[k], rtol)
            if w < 0:
                return k
            displaced[k] = True
        j = jobs[k]
        out_row[j] = r
        out_start[j] = starts[o + w]
        out_score[j] = job_cost[w * n_r + r]
        if g > 0:
            for t in range(sa[w], sb[w]):
                free[r, t] -= g
    return len(jobs)


def _take_in_order(
    free: IntArray, rows: IntArray, lo: IntArray, hi: IntArray, gpus: IntArray, took: BoolArray
) -> None:
    """Each run ``k`` in turn takes ``gpus[k]`` over slots ``[lo[k], hi[k])`` of row
    ``rows[k]`` when every one has them free (``took[k]``), else is skipped."""
    for k in range(len(rows)):
        r, g = rows[k], gpus[k]
        if _span_free(free, r, lo[k], hi[k], g):
            took[k] = True
            for t in range(lo[k], hi[k]):
                free[r, t] -= g


_span_free = njit(nogil=True, cache=True)(_span_free)
_best_free = njit(nogil=True, cache=True)(_best_free)
_compiled_commit_run: Callable[..., int] = njit(nogil=True, cache=True)(_commit_run)
_compiled_take_in_order: Callable[..., None] = njit(nogil=True, cache=True)(_take_in_order)


def take_in_order(
    free: IntArray, rows: IntArray, lo: IntArray, hi: IntArray, gpus: IntArray
) -> BoolArray:
    """Which runs took their GPUs from ``free`` (mutated), taken in the order given, each only
    when its whole span has them free (tens of thousands of runs: a loop in numpy is ~10 µs
    each)."""
    took = np.zeros(len(rows), dtype=np.bool_)
    _compiled_take_in_order(
        free,
        rows.astype(np.int64),
        lo.astype(np.int64),
        hi.astype(np.int64),
        gpus.astype(np.int64),
        took,
    )
    return took


@dataclass(frozen=True, slots=True)
class BlockArrays:
    """What the compiled loop reads for one block: per job its GPUs, home row, block-start
    choice (``first_row`` < 0: the per-job path takes it) and where its candidates are in the
    flat arrays (``offset``, ``width`` starts); flat over the block, each start's score per
    row (start-major), the starts and their slot spans ``[a, b)``."""

    gpus: IntArray
    home: IntArray
    first_w: IntArray
    first_row: IntArray
    offset: IntArray
    width: IntArray
    cost: FloatArray
    starts: FloatArray
    span_a: IntArray
    span_b: IntArray


def commit_run(
    free: IntArray,
    first: int,
    jobs: IntArray,
    block: BlockArrays,
    rtol: float,
    out: tuple[IntArray, FloatArray, FloatArray],
    displaced: BoolArray,
) -> int:
    """Typed entry point of the compiled loop (see ``_commit_run``)."""
    return int(
        _compiled_commit_run(
            free,
            first,
            jobs,
            block.gpus,
            block.home,
            block.first_w,
            block.first_row,
            block.offset,
            block.width,
            block.cost,
            block.starts,
            block.span_a,
            block.span_b,
            rtol,
            out[0],
            out[1],
            out[2],
            displaced,
        )
    )
