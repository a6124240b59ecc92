"""Moves that improve a placement without breaking it, within a deterministic work budget.

Only jobs placed jointly (``greenlight``, ``oracle``) move. Every move keeps every job before its
deadline and within capacity, and is kept only when the total score falls:

* *relocate* a job to its best free candidate;
* *eject* up to ``MAX_EJECT`` jobs that block a cheaper candidate of a job (the fewest that free
  enough GPUs), then re-place them elsewhere;
* *ruin and recreate*: lift a job and up to ``RUIN_SIZE`` jobs running near it in time (any
  region), and put them back largest first, each at its best free start (any slot boundary).
  Small jobs placed first fragment capacity that large ones then cannot use; recreating largest
  first packs them better. The jobs lifted are drawn from a generator seeded with 0.

``place_by_ejecting`` uses the eject move's choice of jobs to lift (``blockers``) to place a job
that holds nothing yet: the repair of an LP rounding that stranded one
(``scheduler.planning.rounding``).

The budget is work, counted in estimated microseconds on two cores (``bench/plan_speed.py``
measures them), not read from a clock, so a cycle is deterministic.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from scheduler.planning.capacity import span
from scheduler.planning.grid import FloatArray, IntArray
from scheduler.planning.placement import Assignment, Placer
from scheduler.planning.policies import JOINT, Candidates
from scheduler.planning.table import JobTable

WORK_PER_S = 1.0e6
WORK_PER_CANDIDATES_CALL = 150.0
WORK_PER_SCORE = 0.2
WORK_PER_MOVE = 80.0
WORK_PER_MOVABLE = 0.01
MAX_EJECT = 4
EJECT_TRIES = 6
MAX_PASSES = 6
RUIN_SIZE = 12
RUIN_STALL = 5
IMPROVE_RTOL = 1e-9


class Effort:
    """A deterministic work budget."""

    def __init__(self, budget_s: float) -> None:
        self.budget_s = budget_s
        self.left = budget_s * WORK_PER_S
        self.spent = 0.0

    def spend(self, units: float) -> None:
        self.left -= units
        self.spent += units

    def share(self, parts: int) -> Effort:
        """A budget of an equal part of what is left (the caller spends what it used)."""
        return Effort(max(self.left, 0.0) / max(parts, 1) / WORK_PER_S)

    @property
    def exhausted(self) -> bool:
        return self.left <= 0


def joint_jobs(table: JobTable, a: Assignment) -> list[int]:
    """Jobs that may move: joint policy, placed before their deadline, priced."""
    return [
        j
        for j in range(len(table))
        if table.policy[j] in JOINT and j not in a.late and math.isfinite(float(a.score[j]))
    ]


class LocalSearch:
    """Relocate and eject moves over one assignment; mutates it and the placer's ledger."""

    def __init__(
        self, placer: Placer, a: Assignment, movable: Sequence[int], effort: Effort
    ) -> None:
        self.placer = placer
        self.a = a
        self.movable = np.array(sorted(movable), dtype=np.int64)
        self.effort = effort
        self.best_score: dict[int, float] = {}
        self.every_cache: dict[int, Candidates] = {}

    def cands(self, j: int) -> Candidates:
        c = self.placer.candidates(j)
        self.effort.spend(WORK_PER_CANDIDATES_CALL + WORK_PER_SCORE * c.score.size)
        self.best_score[j] = float(c.score.min())
        return c

    def regret(self, j: int) -> float:
        return float(self.a.score[j]) - self.best_score.get(j, -math.inf)

    def run(self, first: Sequence[int]) -> None:
        todo = list(first)
        for _ in range(MAX_PASSES):
            improved: set[int] = set()
            for j in todo:
                if self.effort.exhausted:
                    return
                if self.regret(j) <= _tol(float(self.a.score[j])):
                    continue
                moved = self.relocate(j) or self.eject(j)
                if moved:
                    improved |= moved
            if not improved:
                return
            todo = sorted(
                (
                    int(j)
                    for j in self.movable
                    if self.regret(int(j)) > _tol(float(self.a.score[j]))
                ),
                key=lambda j: -self.regret(j),
            )

    def relocate(self, j: int) -> set[int]:
        c = self.cands(j)
        old = (int(self.a.row[j]), float(self.a.start_x[j]), float(self.a.score[j]))
        self.effort.spend(WORK_PER_MOVE)
        self.placer.release(self.a, j)
        found = self.placer.best_index(j, c)
        if found is not None:
            i, w, _ = found
            if float(c.score[i, w]) < old[2] - _tol(old[2]):
                self.placer.commit(
                    self.a, j, int(c.rows[i]), float(c.starts_x[w]), float(c.score[i, w])
                )
                return {j}
        self.placer.commit(self.a, j, *old)
        return set()

    def eject(self, j: int) -> set[int]:
        c = self.cands(j)
        current = float(self.a.score[j])
        flat = np.argsort(c.score, axis=None, kind="stable")[:EJECT_TRIES]
        for idx in flat:
            i, w = np.unravel_index(int(idx), c.score.shape)
            score = float(c.score[i, w])
            if not score < current - _tol(current):
                break
            moved = self.try_eject(j, int(c.rows[i]), float(c.starts_x[w]), score)
            if moved:
                return moved
        return set()

    def blockers(self, j: int, row: int, x: float) -> IntArray | None:
        """Movable jobs to lift so ``j`` fits at ``(row, x)`` (``j`` released), or None."""
        return blockers(self.placer, self.a, self.movable, j, row, x, MAX_EJECT)

    def try_eject(self, j: int, row: int, x: float, score: float) -> set[int]:
        t, placer, a = self.placer.table, self.placer, self.a
        self.effort.spend(WORK_PER_MOVE + WORK_PER_MOVABLE * len(self.movable))
        old_j = (int(a.row[j]), float(a.start_x[j]), float(a.score[j]))
        placer.release(a, j)
        hit = self.blockers(j, row, x)
        if hit is None:
            placer.commit(a, j, *old_j)
            return set()
        old = {int(b): (int(a.row[b]), float(a.start_x[b]), float(a.score[b])) for b in hit}
        for b in old:
            placer.release(a, b)
        if not placer.ledger.fits(row, x, float(t.d[j]), int(t.gpus[j])):
            self._restore(j, old_j, old, placed=[])
            return set()
        placer.commit(a, j, row, x, score)
        placed = [j]
        total = score
        for b in sorted(old, key=lambda b: (float(t.x_l[b] - t.x_e[b]), b)):
            found = placer.best_feasible(b, self.cands(b))
            if found is None:
                self._restore(j, old_j, old, placed)
                return set()
            placer.commit(a, b, found[0], found[1], found[2])
            placed.append(b)
            total += found[2]
        before = old_j[2] + sum(o[2] for o in old.values())
        if total < before - _tol(before):
            return {j, *old}
        self._restore(j, old_j, old, placed)
        return set()

    def _restore(
        self,
        j: int,
        old_j: tuple[int, float, float],
        old: dict[int, tuple[int, float, float]],
        placed: list[int],
    ) -> None:
        for p in placed:
            self.placer.release(self.a, p)
        for b, (row, x, score) in old.items():
            self.placer.commit(self.a, b, row, x, score)
        self.placer.commit(self.a, j, *old_j)

    def every(self, j: int) -> Candidates:
        """Job ``j``'s candidates at every start, kept (prices do not change in a cycle)."""
        c = self.every_cache.get(j)
        if c is None:
            c = self.every_cache[j] = self.placer.candidates(j, every_start=True)
            self.effort.spend(WORK_PER_CANDIDATES_CALL + WORK_PER_SCORE * c.score.size)
        return c

    def ruin_recreate(self, rng: np.random.Generator) -> bool:
        """One ruin-and-recreate move (see the module docstring); True when it was kept."""
        t, a, placer = self.placer.table, self.a, self.placer
        seed = int(self.movable[int(rng.integers(len(self.movable)))])
        x0, d0 = float(a.start_x[seed]), float(t.d[seed])
        starts = a.start_x[self.movable]
        ends = starts + t.d[self.movable]
        near = self.movable[(starts < x0 + 2 * d0) & (ends > x0 - d0) & (self.movable != seed)]
        if len(near) > RUIN_SIZE:
            near = rng.choice(near, RUIN_SIZE, replace=False)
        group = sorted(
            {seed, *(int(j) for j in near)},
            key=lambda j: (-float(t.weight_kw[j] * t.d[j]) * max(int(t.gpus[j]), 1), j),
        )
        old = {j: (int(a.row[j]), float(a.start_x[j]), float(a.score[j])) for j in group}
        for j in group:
            placer.release(a, j)
        placed: list[int] = []
        total = 0.0
        for j in group:
            c = self.every(j)
            self.effort.spend(WORK_PER_MOVE + WORK_PER_SCORE * c.score.size)
            found = placer.best_feasible(j, c)
            if found is None:
                break
            placer.commit(a, j, found[0], found[1], found[2])
            placed.append(j)
            total += found[2]
        before = sum(o[2] for o in old.values())
        if len(placed) == len(group) and total < before - _tol(before):
            return True
        for j in placed:
            placer.release(a, j)
        for j, (row, x, score) in old.items():
            placer.commit(a, j, row, x, score)
        return False

    def ruin_recreate_until_spent(self) -> None:
        """Ruin-and-recreate moves until the budget is spent or ``RUIN_STALL`` moves per
        movable job in a row kept nothing."""
        rng = np.random.default_rng(0)
        stall, limit = 0, RUIN_STALL * max(len(self.movable), 10)
        while not self.effort.exhausted and len(self.movable) and stall < limit:
            stall = 0 if self.ruin_recreate(rng) else stall + 1


def blockers(
    placer: Placer,
    a: Assignment,
    movable: IntArray,
    j: int,
    row: int,
    x: float,
    max_count: int,
) -> IntArray | None:
    """The fewest jobs of ``movable`` (at most ``max_count``) placed in ``a`` to lift so that
    ``j`` (not holding GPUs) fits at ``(row, x)``: each time the one freeing most of what is
    still missing. Empty when ``j`` fits already; None when no such set is found."""
    t = placer.table
    d, gpus = float(t.d[j]), int(t.gpus[j])
    s0, s1 = span(x, d, placer.ledger.n_slots)
    short = np.flatnonzero(placer.ledger.free[row, s0:s1] < gpus) + s0
    if short.size == 0:
        return np.zeros(0, dtype=np.int64)
    m = movable[(movable != j) & (a.row[movable] == row) & (t.gpus[movable] > 0)]
    a0 = np.floor(a.start_x[m] + 1e-9)
    a1 = np.ceil(a.start_x[m] + t.d[m] - 1e-9)
    near = (a0 <= short[-1]) & (a1 > short[0])
    m, a0, a1 = m[near], a0[near], a1[near]
    need = (gpus - placer.ledger.free[row, short]).astype(np.float64)
    chosen = fewest_covering(short, a0, a1, t.gpus[m].astype(np.float64), need, max_count)
    if chosen is None:
        return None
    out: IntArray = m[np.array(sorted(chosen), dtype=np.int64)]
    return out


def fewest_covering(
    short: IntArray,
    a0: FloatArray,
    a1: FloatArray,
    size: FloatArray,
    need: FloatArray,
    max_count: int,
) -> list[int] | None:
    """Greedy cover: indices of at most ``max_count`` runs (each ``size`` GPUs over slots
    ``[a0, a1)``) that together give ``need`` at every slot of ``short`` (sorted), each pick
    the run freeing most of what is still missing (ties: the lowest index). None when they
    cannot. ``need`` is not modified.

    Each run covers a contiguous stretch ``[lo, hi)`` of ``short``, so what it would free is a
    difference of prefix sums of min(its size, what is missing), one prefix sum per distinct
    size: no runs x slots matrix (a 24 h job's repair in a busy region meant thousands x
    hundreds of cells, rebuilt and summed per pick)."""
    need = need.copy()
    lo = np.searchsorted(short, a0, side="left")
    hi = np.searchsorted(short, a1, side="left")
    by_size = [(v, size == v) for v in np.unique(size)]
    chosen: list[int] = []
    while need.max() > 0 and len(chosen) < max_count:
        missing = np.maximum(need, 0)
        gain = np.zeros(len(size))
        for v, rows in by_size:
            sums = np.concatenate(([0.0], np.cumsum(np.minimum(v, missing))))
            gain[rows] = sums[hi[rows]] - sums[lo[rows]]
        gain[chosen] = 0
        best = int(np.argmax(gain)) if gain.size else 0
        if not gain.size or gain[best] <= 0:
            return None
        if not chosen and _out_of_reach(gain, float(missing.sum()), max_count):
            return None
        chosen.append(best)
        need[lo[best] : hi[best]] -= size[best]
    if need.max() > 0:
        return None
    return chosen


def _out_of_reach(gain: FloatArray, missing: float, max_count: int) -> bool:
    """Whether ``max_count`` picks cannot cover ``missing`` even at their first gains: a run
    only ever frees less as others are picked (what is missing only shrinks), so the largest
    first gains bound any set's total. The greedy would fail after ``max_count`` picks; this
    says so after one (most of a repair's tries in a full region are such)."""
    k = min(max_count, gain.size)
    top = np.partition(gain, gain.size - k)[gain.size - k :]
    return float(top.sum()) < missing - 1e-9


def place_by_ejecting(
    placer: Placer,
    a: Assignment,
    j: int,
    movable: IntArray,
    tries: int,
    max_eject: int,
) -> bool:
    """Place job ``j`` (holding no GPUs) at one of its ``tries`` cheapest candidates (any
    start) by lifting the fewest ``movable`` jobs in the way and re-placing them, largest
    first, each at its best free candidate. False, with nothing changed, when no try works.

    The repair of a rounding that stranded ``j``: jobs are only ever put at candidates before
    their deadlines, so a success leaves every job on time."""
    t = placer.table
    c = placer.candidates(j, every_start=True)
    flat = np.argsort(c.score, axis=None, kind="stable")
    # Each try's blockers come from its row's movable jobs: split once per row, not filtered
    # out of every movable job per try (a failed try puts every job back where it was).
    on_row: dict[int, IntArray] = {}
    rows_now = a.row[movable]
    for idx in flat[:tries].tolist():
        i, w = np.unravel_index(idx, c.score.shape)
        if not np.isfinite(c.score[i, w]):
            break
        row, x = int(c.rows[i]), float(c.starts_x[w])
        if row not in on_row:
            on_row[row] = movable[rows_now == row]
        hit = blockers(placer, a, on_row[row], j, row, x, max_eject)
        if hit is None:
            continue
        old = {int(b): (int(a.row[b]), float(a.start_x[b]), float(a.score[b])) for b in hit}
        for b in old:
            placer.release(a, b)
        placed: list[int] = []
        if placer.ledger.fits(row, x, float(t.d[j]), int(t.gpus[j])):
            placer.commit(a, j, row, x, float(c.score[i, w]))
            placed.append(j)
            for b in sorted(old, key=lambda b: (-float(t.d[b]) * int(t.gpus[b]), b)):
                found = placer.best_feasible(b, placer.candidates(b, every_start=True))
                if found is None:
                    break
                placer.commit(a, b, found[0], found[1], found[2])
                placed.append(b)
        if len(placed) == len(old) + 1:
            return True
        for p in placed:
            placer.release(a, p)
        for b, (r, bx, score) in old.items():
            placer.commit(a, b, r, bx, score)
    return False


def _tol(value: float) -> float:
    return IMPROVE_RTOL * max(1.0, abs(value))
