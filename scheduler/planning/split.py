"""Interruptible jobs: split a run into its region's lowest-carbon slots before the deadline.

A job that checkpoints may run in several windows (the runner suspends it with SIGTERM and it
resumes from its checkpoint). After placement, each interruptible job under ``wait-awhile``,
``greenlight`` or ``oracle`` may be split inside the region it was given: its ``ceil(d)`` slots
are laid out as chunks of at least ``MIN_CHUNK_S`` (so a job is not suspended every few
minutes), each chunk in the cheapest free stretch of whole slots between its earliest start and
its deadline, and the split replaces the single run only when it is cheaper on the prices the
policy plans on. With one-slot chunks this is exactly Let's Wait Awhile's "k lowest slots".
Chunks never start in a region's unpriced tail, and every slot has the job's GPUs free.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from scheduler.domain import Policy
from scheduler.planning.capacity import CapacityLedger
from scheduler.planning.grid import FloatArray
from scheduler.planning.placement import Assignment, Placer
from scheduler.planning.policies import SPLITTING, Books, CurrentPlans
from scheduler.planning.table import JobTable

MIN_CHUNK_S = 1800.0
SPLIT_RTOL = 1e-9


def chunk_lengths(n_slots: int, min_chunk: int) -> list[int]:
    """Chunk lengths (slots) for ``n_slots``: all at least ``min_chunk``, longest first."""
    if n_slots <= min_chunk:
        return [n_slots]
    count = n_slots // min_chunk
    lengths = [min_chunk] * count
    for i in range(n_slots - count * min_chunk):
        lengths[i % count] += 1
    return sorted(lengths, reverse=True)


def lowest_chunks(
    price: FloatArray,
    usable: np.ndarray,
    lengths: list[int],
) -> list[tuple[int, int]] | None:
    """Non-overlapping ``[a, b)`` slot ranges of the given lengths over ``usable`` slots, each
    the cheapest stretch left when its turn comes (longest first); None when they do not fit.

    Equal consecutive lengths are chosen in one pass: the stretches of one length are ranked
    once (ties to the earlier start, as ``argmin`` breaks them) and taken in that order unless
    they overlap one taken before, which is the same as re-ranking after every choice because
    a stretch that overlaps stays overlapped."""
    taken = ~usable.copy()
    chosen: list[tuple[int, int]] = []
    prefix = np.concatenate(([0.0], np.cumsum(np.where(usable, price, 0.0))))
    for length, group in itertools.groupby(lengths):
        if length > len(price):
            return None
        starts = _lowest_starts(prefix, taken, length, len(list(group)))
        if starts is None:
            return None
        for a in starts:
            chosen.append((a, a + length))
            taken[a : a + length] = True
    return sorted(chosen)


def _lowest_starts(
    prefix: FloatArray, taken: np.ndarray, length: int, count: int
) -> list[int] | None:
    """Starts of ``count`` non-overlapping free stretches of ``length`` slots, cheapest first."""
    n_starts = len(taken) - length + 1
    blocked = np.concatenate(([0], np.cumsum(taken)))
    starts = np.arange(n_starts)
    free = starts[blocked[starts + length] - blocked[starts] == 0]
    sums = prefix[free + length] - prefix[free]
    ranked = free[np.argsort(sums, kind="stable")]
    if length == 1:
        return [int(a) for a in ranked[:count]] if len(ranked) >= count else None
    picked: list[int] = []
    clash = bytearray(n_starts)
    for a in ranked.tolist():
        if clash[a]:
            continue
        picked.append(a)
        if len(picked) == count:
            return picked
        # A later stretch of this length that starts within ``length`` of ``a`` overlaps it.
        lo, hi = max(0, a - length + 1), min(n_starts, a + length)
        clash[lo:hi] = b"\x01" * (hi - lo)
    return None


def split_interruptible(
    table: JobTable,
    books: Books,
    ledger: CapacityLedger,
    a: Assignment,
) -> None:
    """Split every eligible job in ``a`` where that is cheaper; updates ``a.splits`` and the
    ledger."""
    placer = Placer(table, books, CurrentPlans(np.zeros(0, np.int64), np.zeros(0)), ledger)
    for job in np.flatnonzero(table.interruptible & ~table.deployment):
        j = int(job)
        if table.policy[j] not in SPLITTING or j in a.late or a.row[j] < 0:
            continue
        _split(table, books, placer, a, j)


def _split(table: JobTable, books: Books, placer: Placer, a: Assignment, j: int) -> None:
    policy: Policy = table.policy[j]
    book = books.planning(policy)
    row = int(a.row[j])
    if not book.priced[row]:
        return
    d = float(table.d[j])
    need = math.ceil(d - 1e-9)
    step_s = table.grid.step_s
    first = math.ceil(float(table.x_e[j]) - 1e-9)
    deadline_x = float(table.x_l[j]) + d
    last = min(math.floor(deadline_x + 1e-9), int(book.start_end[row]), placer.ledger.n_slots)
    if last - first < need or need < 2:
        return
    placer.release(a, j)
    window = slice(first, last)
    usable = placer.ledger.free[row, window] >= int(table.gpus[j])
    price = book.values[row, window]
    min_chunk = max(1, math.ceil(MIN_CHUNK_S / step_s - 1e-9))
    chunks = lowest_chunks(price, usable, chunk_lengths(need, min_chunk))
    contiguous = float(book.run_cost(np.array([row]), np.array([a.start_x[j]]), d)[0, 0])
    if chunks is None:
        placer.retake(a, j)
        return
    runs = _merge([(first + s, first + e) for s, e in chunks])
    tail = need - d
    runs[-1] = (runs[-1][0], runs[-1][1] - tail)
    split_cost = sum(
        float(book.run_cost(np.array([row]), np.array([x0]), x1 - x0)[0, 0]) for x0, x1 in runs
    )
    if len(runs) > 1 and split_cost < contiguous * (1 - SPLIT_RTOL):
        a.splits[j] = tuple((float(x0), float(x1)) for x0, x1 in runs)
    placer.retake(a, j)


def _merge(runs: list[tuple[int, int]]) -> list[tuple[float, float]]:
    merged: list[tuple[float, float]] = []
    for x0, x1 in runs:
        if merged and merged[-1][1] == x0:
            merged[-1] = (merged[-1][0], float(x1))
        else:
            merged.append((float(x0), float(x1)))
    return merged
