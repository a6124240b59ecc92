"""Clearing a window for a late job: lift every plan in its way, however many.

The cycle's cheap repair (``deadlines.repair_by_ejecting``) lifts at most ``REPAIR_EJECT`` jobs
for a late one. A day-long job arriving with an hour of slack into a region booked full for the
day needs more: hundreds of short runs stand in its way. Placing again every kept job that
overlaps the late job's window in its home region (``cycle._place_around``) settles it, but at
100,000 jobs that moved tens of thousands of plans, every cycle such a job arrived.

Here each late job (least slack first) takes, of its ``CLEAR_TRIES`` cheapest starts before its
deadline, the one its GPUs fall least short at, and the fewest placed jobs covering that
shortfall are lifted (``search.fewest_covering``). Each lifted job takes its best start with
free GPUs, or, tight too, has a window cleared the same way: an ejection chain, ended by never
lifting a job the chain placed and by ``CLEAR_MAX`` lifted jobs in all. Pure: no clock, no I/O.
"""

from __future__ import annotations

import numpy as np

from scheduler.planning.capacity import CapacityLedger, held, span, spans
from scheduler.planning.grid import BoolArray, IntArray
from scheduler.planning.placement import Assignment, Placer
from scheduler.planning.policies import Books, Candidates, current_plans
from scheduler.planning.search import blockers
from scheduler.planning.table import JobTable

# Cheapest starts of a late job weighed for the window to clear.
CLEAR_TRIES = 20
# Jobs lifted in all, at most; a larger chain is left to placing the region again.
CLEAR_MAX = 2_000


def clear_for_late(
    table: JobTable, books: Books, a: Assignment, ledger: CapacityLedger
) -> IntArray | None:
    """Place the late jobs of ``a`` on time by clearing windows (both ``a`` and ``ledger`` are
    mutated). A lifted job goes to its best start with free GPUs, or, when none is left, has a
    window cleared in turn; a job placed by the repair is not lifted again, so the chain ends.
    Returns the jobs whose placement changed (a job no window could be cleared for is placed
    as ``Placer.place`` would: late), or None when more than ``CLEAR_MAX`` would be lifted or
    no late job got a window (``a`` and ``ledger`` then hold partial work: pass copies)."""
    placer = Placer(table, books, current_plans(table, table.grid), ledger)
    rank = np.empty(len(table), dtype=np.int64)
    rank[table.order()] = np.arange(len(table))
    queue = sorted(a.late, key=lambda j: int(rank[j]))
    for j in queue:
        placer.release(a, j)
        a.late.pop(j)
        a.notes.pop(j, None)
    movable = (a.row >= 0) & (table.gpus > 0) & ~table.interruptible
    movable[queue] = False
    for j in a.splits:
        movable[j] = False
    # GPUs each slot would have free were every movable job lifted: lifting one leaves it as
    # it is, placing one (it is then fixed) takes from it. Kept up to date, not recomputed.
    m = np.flatnonzero(movable)
    lo, hi = spans(a.start_x[m], table.d[m], ledger.n_slots)
    could = ledger.free + held(ledger.free.shape, a.row[m], lo, hi, table.gpus[m])
    changed: list[int] = []
    cleared = 0
    lifted = 0
    while queue:
        j = queue.pop(0)
        changed.append(j)
        if table.x_l[j] < table.x_e[j]:  # past its latest start: late wherever it goes
            placer.place(a, j)
            _fix(could, table, a, j)
            continue
        every = placer.candidates(j, every_start=True)
        found = placer.best_feasible(j, every)
        if found is not None:
            placer.commit(a, j, found[0], found[1], found[2])
            placer.note_forced(a, j)
            _fix(could, table, a, j)
            continue
        window = _window(placer, a, j, every, movable, could)
        if window is None:
            placer.place(a, j)  # late, as the greedy leaves it
            _fix(could, table, a, j)
            continue
        row, x, score, hit = window
        lifted += len(hit)
        if lifted > CLEAR_MAX:
            return None
        for b in hit.tolist():
            placer.release(a, b)
            movable[b] = False
        placer.commit(a, j, row, x, score)
        placer.note_forced(a, j)
        _fix(could, table, a, j)
        cleared += 1
        queue = sorted((*queue, *hit.tolist()), key=lambda k: int(rank[k]))
    if not cleared:
        return None
    return np.array(sorted(changed), dtype=np.int64)


def _fix(could: IntArray, table: JobTable, a: Assignment, j: int) -> None:
    """Job ``j`` was placed by the chain: it holds its GPUs for good."""
    row = int(a.row[j])
    if row >= 0 and table.gpus[j] > 0:
        s0, s1 = span(float(a.start_x[j]), float(table.d[j]), could.shape[1])
        could[row, s0:s1] -= int(table.gpus[j])


def _window(
    placer: Placer,
    a: Assignment,
    j: int,
    c: Candidates,
    movable: BoolArray,
    could: IntArray,
) -> tuple[int, float, float, IntArray] | None:
    """``(row, start, score, jobs to lift)`` for late job ``j``: of its ``CLEAR_TRIES``
    cheapest starts before the deadline that lifting ``movable`` jobs can clear (no slot held
    by running or already re-placed jobs), the one falling fewest GPU-slots short, then the
    cheapest; None when there is none."""
    t = placer.table
    gpus, free, n_slots = int(t.gpus[j]), placer.ledger.free, placer.ledger.n_slots
    a0, a1 = spans(c.starts_x, np.full(c.starts_x.shape, float(t.d[j])), n_slots)
    short = _span_sums(np.maximum(gpus - free[c.rows], 0), a0, a1)
    stuck = _span_sums((could[c.rows] < gpus).astype(np.int64), a0, a1) > 0
    score = np.where(stuck, np.inf, c.score)
    flat = np.argsort(score, axis=None, kind="stable")[:CLEAR_TRIES]
    flat = flat[np.isfinite(score.ravel()[flat])]
    if flat.size == 0:
        return None
    best = int(flat[np.argmin(short.ravel()[flat])])  # first of the fewest: the cheapest
    i, w = np.unravel_index(best, score.shape)
    row, x = int(c.rows[i]), float(c.starts_x[w])
    hit = blockers(placer, a, np.flatnonzero(movable & (a.row == row)), j, row, x, CLEAR_MAX)
    if hit is None:
        return None
    return row, x, float(c.score[i, w]), hit


def _span_sums(per_slot: IntArray, a0: IntArray, a1: IntArray) -> IntArray:
    """``[r, w]``: the sum of row ``r`` of ``per_slot`` over slots ``[a0[w], a1[w])``."""
    prefix = np.zeros((per_slot.shape[0], per_slot.shape[1] + 1), dtype=np.int64)
    np.cumsum(per_slot, axis=1, out=prefix[:, 1:])
    sums: IntArray = prefix[:, a1] - prefix[:, a0]
    return sums
