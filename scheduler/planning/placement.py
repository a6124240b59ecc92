"""Capacity-aware placement: every job to its best candidate that still has free GPUs.

The greedy visits jobs by least slack, then priority, and commits each one's best feasible
``(region, start)`` under its policy's score; blocks of jobs choose at once
(``scheduler.planning.batch``) with exactly the one-by-one result. When a job finds no room
before its deadline the greedy order stranded it, so an earliest-deadline-first pass at the
earliest feasible starts and the greedy in other orders (longest first, widest first) are tried
too, and the placement with the fewest late jobs wins (then the lower total score);
``scheduler.planning.deadlines`` then asks HiGHS on small snapshots. The improvement phase
(``scheduler.planning.improve``) moves jobs towards cheap windows without ever making one late.
A job that no placement gets in before its deadline is late: it starts as early as free GPUs
allow and is reported.
"""

from __future__ import annotations

import math
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from scheduler.planning.batch import BatchChooser, Choices
from scheduler.planning.capacity import CapacityLedger
from scheduler.planning.grid import FloatArray, IntArray
from scheduler.planning.kernels import BlockArrays, commit_run
from scheduler.planning.policies import Books, Candidates, CurrentPlans, candidates
from scheduler.planning.table import JobTable
from scheduler.planning.window import TIE_RTOL, candidate_starts

FORCED_NOTE = "latest safe start reached: starts now whatever the forecast"
UNPRICED_NOTE = "no priced region allowed: runs now in its home region"
BLOCK_START = 64
BLOCK_MAX = 2048
# Fewer blocks than this gain nothing from choosing the next one on another thread.
PIPELINE_MIN_BLOCKS = 3
# Blocks choosing ahead at once: one per core of the two we size for.
CHOOSERS = 2


@dataclass
class Assignment:
    """One placement of every job. ``row`` -1 means no known region (home is not configured);
    ``score`` is the chosen candidate's score (``inf`` for a late or unpriced job);
    ``splits`` holds the windows ``(x0, x1)`` of interruptible jobs split in their region."""

    row: IntArray
    start_x: FloatArray
    score: FloatArray
    late: dict[int, str] = field(default_factory=dict)
    notes: dict[int, str] = field(default_factory=dict)
    splits: dict[int, tuple[tuple[float, float], ...]] = field(default_factory=dict)
    # Jobs that did not get their best candidate (capacity pushed them): what improvement tries.
    displaced: set[int] = field(default_factory=set)

    @classmethod
    def empty(cls, n_jobs: int) -> Assignment:
        return cls(
            row=np.full(n_jobs, -1, dtype=np.int64),
            start_x=np.zeros(n_jobs),
            score=np.full(n_jobs, np.inf),
        )

    def copy(self) -> Assignment:
        return Assignment(
            row=self.row.copy(),
            start_x=self.start_x.copy(),
            score=self.score.copy(),
            late=dict(self.late),
            notes=dict(self.notes),
            splits=dict(self.splits),
            displaced=set(self.displaced),
        )

    def subset(self, jobs: IntArray) -> Assignment:
        """The placement of ``jobs`` alone, renumbered as ``table.subset`` renumbers them."""
        index = {int(j): k for k, j in enumerate(jobs.tolist())}
        return Assignment(
            row=self.row[jobs],
            start_x=self.start_x[jobs],
            score=self.score[jobs],
            late={index[j]: r for j, r in self.late.items() if j in index},
            notes={index[j]: n for j, n in self.notes.items() if j in index},
            splits={index[j]: w for j, w in self.splits.items() if j in index},
            displaced={index[j] for j in self.displaced if j in index},
        )

    def objective(self) -> tuple[int, float]:
        """``(late jobs, total finite score)``: lower is better, lexicographically."""
        finite = self.score[np.isfinite(self.score)]
        return len(self.late), float(finite.sum())


def pick(score: FloatArray) -> tuple[int, int] | None:
    """``(row index, start index)`` of the best score: ties go to the earliest start, then to
    the first row (home). None when no score is finite."""
    if score.size == 0:
        return None
    best = float(score.min())
    if not math.isfinite(best):
        return None
    ok = score <= best + TIE_RTOL * max(1.0, abs(best))
    w = int(np.argmax(ok.any(axis=0)))
    return int(np.argmax(ok[:, w])), w


class Placer:
    """Places jobs of one table on one ledger under their policies."""

    def __init__(
        self,
        table: JobTable,
        books: Books,
        current: CurrentPlans,
        ledger: CapacityLedger,
    ) -> None:
        self.table = table
        self.books = books
        self.current = current
        self.ledger = ledger

    def candidates(self, j: int, *, every_start: bool = False) -> Candidates:
        return candidates(j, self.table, self.books, self.current, every_start=every_start)

    def windows(self, a: Assignment, j: int) -> tuple[tuple[float, float], ...]:
        """The runs ``(x0, x1)`` job ``j`` holds in ``a``."""
        split = a.splits.get(j)
        if split:
            return split
        x = float(a.start_x[j])
        return ((x, x + float(self.table.d[j])),)

    def commit(self, a: Assignment, j: int, row: int, x: float, score: float) -> None:
        """Place job ``j`` as one run from ``x`` in ``row`` and take its GPUs."""
        if a.splits:
            a.splits.pop(j, None)
        a.row[j], a.start_x[j], a.score[j] = row, x, score
        if row >= 0:
            self.ledger.take(row, x, float(self.table.d[j]), int(self.table.gpus[j]))

    def retake(self, a: Assignment, j: int) -> None:
        row = int(a.row[j])
        if row >= 0:
            for x0, x1 in self.windows(a, j):
                self.ledger.take(row, x0, x1 - x0, int(self.table.gpus[j]))

    def release(self, a: Assignment, j: int) -> None:
        row = int(a.row[j])
        if row >= 0:
            for x0, x1 in self.windows(a, j):
                self.ledger.release(row, x0, x1 - x0, int(self.table.gpus[j]))

    def best_index(self, j: int, cands: Candidates) -> tuple[int, int, bool] | None:
        """``(row index, start index, displaced)`` of the best candidate with free GPUs, or None;
        ``displaced`` says capacity kept the job from its best candidate."""
        choice = pick(cands.score)
        if choice is None:
            return None
        i, w = choice
        d, gpus = float(self.table.d[j]), int(self.table.gpus[j])
        if self.ledger.fits(int(cands.rows[i]), float(cands.starts_x[w]), d, gpus):
            return i, w, False
        ok = self.ledger.feasible(cands.rows, cands.starts_x, d, gpus)
        choice = pick(np.where(ok, cands.score, np.inf))
        return None if choice is None else (*choice, True)

    def best_feasible(self, j: int, cands: Candidates) -> tuple[int, float, float, bool] | None:
        """``(row, start, score, displaced)`` of the best candidate with free GPUs, or None."""
        found = self.best_index(j, cands)
        if found is None:
            return None
        i, w, displaced = found
        return (int(cands.rows[i]), float(cands.starts_x[w]), float(cands.score[i, w]), displaced)

    def place(self, a: Assignment, j: int) -> None:
        """Commit job ``j`` to its best feasible candidate, or as early as possible if none."""
        cands = self.candidates(j)
        if cands.unpriced:
            a.notes[j] = UNPRICED_NOTE
        if self.table.x_l[j] < self.table.x_e[j]:
            self.place_late(a, j, cands)
            return
        found = self.best_feasible(j, cands)
        if found is None and not cands.unpriced:
            # No start next to a price break is free: any free start will do.
            every = self.candidates(j, every_start=True)
            found = self.best_feasible(j, every)
            if found is not None:
                found = (*found[:3], True)
        if found is None:
            self.place_late(a, j, cands)
            return
        row, x, score, displaced = found
        if displaced:
            a.displaced.add(j)
        self.note_forced(a, j)
        self.commit(a, j, row, x, math.inf if cands.unpriced else score)

    def note_forced(self, a: Assignment, j: int) -> None:
        """Note on job ``j`` that it starts now whatever the forecast (its latest start is in
        the current slot)."""
        t = self.table
        if not t.deployment[j] and t.x_e[j] <= t.x_l[j] < math.floor(t.x_e[j]) + 1:
            a.notes[j] = FORCED_NOTE

    def place_all(self, a: Assignment, order: IntArray) -> None:
        """The greedy over ``order``: blocks of jobs choose at once (``batch``) against the
        ledger as it stands; the compiled loop (``kernels``) then commits them in order, each
        to its block-start choice while that is still free, else to its best candidate still
        free: what the one-by-one greedy would choose. Jobs with no candidate there take the
        per-job path (``place``).

        The next block chooses on a worker thread while this one commits (both release the
        GIL). It reads a ledger being filled, so it sees each slot's free count as it was then
        or since; counts only fall during the greedy, so what it deems free is a superset of
        what is free when the job's turn comes, and the commit checks the ledger again: the
        result is the one-by-one greedy's whatever the timing."""
        chooser = BatchChooser(self.table, self.books, self.current)
        blocks = _blocks(order)
        if len(blocks) < PIPELINE_MIN_BLOCKS:
            for jobs in blocks:
                self._commit_block(a, jobs, *chooser.choose_block(jobs, self.ledger))
        else:
            with ThreadPoolExecutor(max_workers=CHOOSERS) as pool:
                ahead = deque(
                    pool.submit(chooser.choose_block, jobs, self.ledger)
                    for jobs in blocks[:CHOOSERS]
                )
                for k, jobs in enumerate(blocks):
                    choice, arrays = ahead.popleft().result()
                    if k + CHOOSERS < len(blocks):
                        ahead.append(
                            pool.submit(chooser.choose_block, blocks[k + CHOOSERS], self.ledger)
                        )
                    self._commit_block(a, jobs, choice, arrays)
        t = self.table
        forced = ~t.deployment & (t.x_e <= t.x_l) & (t.x_l < np.floor(t.x_e) + 1)
        for j in np.flatnonzero(forced).tolist():
            if j not in a.late:
                a.notes[j] = FORCED_NOTE

    def _commit_block(
        self, a: Assignment, jobs: IntArray, choice: Choices, arrays: BlockArrays | None
    ) -> None:
        displaced = choice.displaced.copy()
        k = 0
        while k < len(jobs):
            if arrays is not None:
                k = commit_run(
                    self.ledger.free,
                    k,
                    jobs,
                    arrays,
                    TIE_RTOL,
                    (a.row, a.start_x, a.score),
                    displaced,
                )
                self.ledger.touch_all()
            if k < len(jobs):
                self.place(a, int(jobs[k]))
                k += 1
        a.displaced.update(jobs[displaced].tolist())

    def place_late(self, a: Assignment, j: int, cands: Candidates) -> None:
        """Earliest start with free GPUs past the deadline (over capacity at the earliest
        start when the grid has none), recorded in ``a.late``."""
        t = self.table
        rows = (
            cands.rows
            if cands.rows.size
            else (np.array([t.home[j]], dtype=np.int64) if t.home[j] >= 0 else cands.rows)
        )
        x_e, d = float(t.x_e[j]), float(t.d[j])
        if t.x_l[j] < x_e:
            reason = f"deadline cannot be met: latest start was {t.grid.to_time(t.x_l[j])}"
        elif cands.rows.size and np.isfinite(cands.score).any():
            reason = "no free GPUs before the deadline: planned as early as possible"
        else:
            reason = "no priced start before the deadline: planned as early as possible"
        a.late[j] = reason
        if rows.size == 0:
            self.commit(a, j, -1, x_e, math.inf)
            return
        starts = candidate_starts(x_e, math.inf, max(x_e, self.ledger.n_slots - d))
        ok = self.ledger.feasible(rows, starts, d, int(t.gpus[j]))
        cols = np.flatnonzero(ok.any(axis=0))
        if cols.size == 0:
            a.late[j] = reason + "; no free GPUs within the planning horizon"
            self.commit(a, j, int(rows[0]), x_e, math.inf)
            return
        w = int(cols[0])
        self.commit(a, j, int(rows[int(np.argmax(ok[:, w]))]), float(starts[w]), math.inf)

    def earliest_feasible(self, a: Assignment, j: int) -> None:
        """Commit job ``j`` at its earliest feasible candidate (cheapest row on a tie)."""
        cands = self.candidates(j)
        if cands.unpriced:
            a.notes[j] = UNPRICED_NOTE
        if self.table.x_l[j] < self.table.x_e[j]:
            self.place_late(a, j, cands)
            return
        ok = self.ledger.feasible(
            cands.rows, cands.starts_x, float(self.table.d[j]), int(self.table.gpus[j])
        ) & np.isfinite(cands.score)
        cols = np.flatnonzero(ok.any(axis=0))
        if cols.size == 0:
            self.place_late(a, j, cands)
            return
        w = int(cols[0])
        a.displaced.add(j)
        col = np.where(ok[:, w], cands.score[:, w], np.inf)
        i = int(np.argmin(col))
        self.commit(
            a,
            j,
            int(cands.rows[i]),
            float(cands.starts_x[w]),
            math.inf if cands.unpriced else float(col[i]),
        )


def _blocks(order: IntArray) -> list[IntArray]:
    """``order`` cut into blocks that double from ``BLOCK_START`` to ``BLOCK_MAX`` jobs: small
    first, so a small table builds no big tensor."""
    out, pos, size = [], 0, BLOCK_START
    while pos < len(order):
        out.append(order[pos : pos + size])
        pos += size
        size = min(2 * size, BLOCK_MAX)
    return out


def edf_order(table: JobTable) -> IntArray:
    """Earliest deadline (latest start + duration) first, deployments first of all."""
    due = np.where(table.deployment, -np.inf, table.x_l + table.d)
    order: IntArray = np.lexsort((np.array([j.id for j in table.jobs]), due))
    return order


def repair_orders(table: JobTable) -> list[IntArray]:
    """Orders to retry when least-slack-first strands jobs: longest first and widest (most GPUs)
    first pack long and wide jobs before the small ones fragment the capacity; deployments lead
    every order."""
    ids = np.array([j.id for j in table.jobs])
    lead = ~table.deployment
    return [
        np.lexsort((ids, -table.gpus, -table.d, lead)),
        np.lexsort((ids, -table.d, -table.gpus, lead)),
    ]


def place_jobs(
    table: JobTable,
    books: Books,
    current: CurrentPlans,
    base: CapacityLedger,
) -> tuple[Assignment, CapacityLedger]:
    """The greedy placement (least slack first). When it strands a job, the earliest-deadline
    placement at earliest feasible starts and the greedy in the ``repair_orders`` are tried too,
    and the placement with the fewest late jobs (then the lowest total score) wins. Returns the
    assignment and the ledger it leaves."""
    ledger = base.copy()
    greedy = Assignment.empty(len(table))
    Placer(table, books, current, ledger).place_all(greedy, table.order())
    if not greedy.late:
        return greedy, ledger
    tried = [(greedy, ledger)]
    edf_ledger = base.copy()
    edf = Assignment.empty(len(table))
    placer = Placer(table, books, current, edf_ledger)
    for j in edf_order(table):
        placer.earliest_feasible(edf, int(j))
    tried.append((edf, edf_ledger))
    for order in repair_orders(table):
        other_ledger = base.copy()
        other = Assignment.empty(len(table))
        Placer(table, books, current, other_ledger).place_all(other, order)
        tried.append((other, other_ledger))
    return min(tried, key=lambda t: t[0].objective())
