"""Closing the greedy's gap under contention, within the cycle's budget.

Only jobs placed jointly (``greenlight``, ``oracle``) move; every other job keeps the capacity
its policy took. When no joint job was displaced by capacity the greedy is already optimal (the
objective is a sum of per-job scores) and nothing runs. Otherwise:

1. **LP relaxation** of the time-indexed formulation (HiGHS), when the candidates fit the
   budget, rounded two ways: jobs the LP places integrally first, each taking its candidate of
   highest LP weight that still fits; and a greedy on scores plus the LP's capacity prices
   (duals), which steers jobs away from the slots everyone wants.
2. **Local search** on the greedy's placement and on each rounding: *relocate* a job to its best
   feasible candidate, and *eject* up to ``MAX_EJECT`` jobs blocking a cheaper candidate,
   re-placing them elsewhere, kept only when the total score falls.

Every move keeps every job before its deadline and within capacity, so the best of these
placements (fewest late jobs, then lowest total score) is never worse than the greedy's. The
budget is counted in work (candidate scores evaluated, LP size), not read from a clock, so a
cycle is deterministic; ``WORK_PER_S`` converts ``Snapshot.budget_s`` (measured with
``bench/plan_speed.py`` on two cores).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from scheduler.domain import Policy
from scheduler.planning.capacity import CapacityLedger, span
from scheduler.planning.formulation import (
    CandidateSet,
    Formulation,
    enumerate_candidates,
    formulate,
    solve_lp,
)
from scheduler.planning.grid import FloatArray, IntArray
from scheduler.planning.placement import Assignment, Placer
from scheduler.planning.policies import JOINT, Books, Candidates, CurrentPlans
from scheduler.planning.table import JobTable

# Work is counted in estimated microseconds on two cores (bench/plan_speed.py measures them):
# a job's candidates cost a fixed overhead plus a little per score, a move a fixed overhead,
# the LP a fixed cost per nonzero.
WORK_PER_S = 1.0e6
WORK_PER_CANDIDATES_CALL = 150.0
WORK_PER_SCORE = 0.2
WORK_PER_MOVE = 80.0
WORK_PER_MOVABLE = 0.01
LP_WORK_PER_NNZ = 8.0
LP_MAX_CANDIDATES = 300_000
# A wall-clock guard for HiGHS on a pathological LP; the work budget decides in practice.
LP_TIME_LIMIT_FACTOR = 20.0
MAX_EJECT = 4
EJECT_TRIES = 6
MAX_PASSES = 6
IMPROVE_RTOL = 1e-9
GUARD_NOTE = "forecast error margin would cost more than running now: runs now"


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
    return [j for j in range(len(table)) if table.policy[j] in JOINT and j not in a.late
            and math.isfinite(float(a.score[j]))]


class LocalSearch:
    """Relocate and eject moves over one assignment; mutates it and the placer's ledger."""

    def __init__(self, placer: Placer, a: Assignment, movable: Sequence[int],
                 effort: Effort) -> None:
        self.placer = placer
        self.a = a
        self.movable = np.array(sorted(movable), dtype=np.int64)
        self.effort = effort
        self.best_score: dict[int, float] = {}

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
            todo = sorted((int(j) for j in self.movable
                           if self.regret(int(j)) > _tol(float(self.a.score[j]))),
                          key=lambda j: -self.regret(j))

    def relocate(self, j: int) -> set[int]:
        c = self.cands(j)
        old = (int(self.a.row[j]), float(self.a.start_x[j]), float(self.a.score[j]))
        self.effort.spend(WORK_PER_MOVE)
        self.placer.release(self.a, j)
        found = self.placer.best_index(j, c)
        if found is not None:
            i, w, _ = found
            if float(c.score[i, w]) < old[2] - _tol(old[2]):
                self.placer.commit(self.a, j, int(c.rows[i]), float(c.starts_x[w]),
                                   float(c.score[i, w]))
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
        t = self.placer.table
        d, gpus = float(t.d[j]), int(t.gpus[j])
        s0, s1 = span(x, d, self.placer.ledger.n_slots)
        short = np.flatnonzero(self.placer.ledger.free[row, s0:s1] < gpus) + s0
        if short.size == 0:
            return np.zeros(0, dtype=np.int64)
        m = self.movable[(self.movable != j) & (self.a.row[self.movable] == row)
                         & (t.gpus[self.movable] > 0)]
        a0 = np.floor(self.a.start_x[m] + 1e-9)
        a1 = np.ceil(self.a.start_x[m] + t.d[m] - 1e-9)
        near = (a0 <= short[-1]) & (a1 > short[0])
        m, a0, a1 = m[near], a0[near], a1[near]
        # Lift the fewest jobs: each time the one freeing most of what is still missing.
        need = (gpus - self.placer.ledger.free[row, short]).astype(np.float64)
        gives = ((a0[:, None] <= short[None, :]) & (a1[:, None] > short[None, :])) * \
            t.gpus[m][:, None].astype(np.float64)
        chosen: list[int] = []
        while need.max() > 0 and len(chosen) < MAX_EJECT:
            gain = np.minimum(gives, np.maximum(need, 0)[None, :]).sum(axis=1)
            gain[chosen] = 0
            best = int(np.argmax(gain)) if gain.size else 0
            if not gain.size or gain[best] <= 0:
                return None
            chosen.append(best)
            need -= gives[best]
        if need.max() > 0:
            return None
        out: IntArray = m[np.array(sorted(chosen), dtype=np.int64)]
        return out

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

    def _restore(self, j: int, old_j: tuple[int, float, float],
                 old: dict[int, tuple[int, float, float]], placed: list[int]) -> None:
        for p in placed:
            self.placer.release(self.a, p)
        for b, (row, x, score) in old.items():
            self.placer.commit(self.a, b, row, x, score)
        self.placer.commit(self.a, j, *old_j)


def _tol(value: float) -> float:
    return IMPROVE_RTOL * max(1.0, abs(value))


def improve(
    table: JobTable, books: Books, current: CurrentPlans, ledger: CapacityLedger,
    a: Assignment, budget_s: float,
) -> Assignment:
    """The best placement found within ``budget_s`` (see the module docstring); ``ledger`` is
    updated in place to match the returned assignment."""
    joint = joint_jobs(table, a)
    displaced = sorted(a.displaced.intersection(joint))
    if not displaced or budget_s <= 0:
        return a
    effort = Effort(budget_s)
    starts: list[tuple[Assignment, CapacityLedger, list[int]]] = [
        (a.copy(), ledger.copy(), displaced)]
    if _candidate_count(table, joint) <= LP_MAX_CANDIDATES:
        residual = ledger.copy()
        releaser = Placer(table, books, current, residual)
        for j in joint:
            releaser.release(a, j)
        by_score = sorted(joint, key=lambda j: -float(a.score[j]))
        starts += [(s_a, s_l, by_score) for s_a, s_l in
                   _lp_starts(table, books, current, residual, a, joint, effort)]
    results: list[tuple[Assignment, CapacityLedger]] = []
    for n, (start_a, start_ledger, first) in enumerate(starts):
        share = effort.share(len(starts) - n)
        search = LocalSearch(Placer(table, books, current, start_ledger), start_a, joint, share)
        search.run(first)
        effort.spend(share.spent)
        results.append((start_a, start_ledger))
    best_a, best_ledger = min(results, key=lambda r: r[0].objective())
    ledger.assign(best_ledger.free)
    return best_a


def _candidate_count(table: JobTable, jobs: list[int]) -> int:
    """An upper bound on the candidates of ``jobs`` (regions x starts), without building them."""
    idx = np.array(jobs, dtype=np.int64)
    last = np.minimum(table.x_l[idx], table.grid.n_slots - table.d[idx])
    starts = np.maximum(np.floor(last) - np.floor(table.x_e[idx]), 0) + 1
    regions = np.array([len(table.allowed[j]) for j in jobs])
    return int((starts * regions).sum())


def _lp_starts(
    table: JobTable, books: Books, current: CurrentPlans, residual: CapacityLedger,
    a: Assignment, joint: list[int], effort: Effort,
) -> list[tuple[Assignment, CapacityLedger]]:
    """Placements rounded from the LP relaxation (none when it is too big for the budget)."""
    placer = Placer(table, books, current, residual)
    cands = enumerate_candidates(placer, joint)
    effort.spend(len(joint) * WORK_PER_CANDIDATES_CALL + WORK_PER_SCORE * len(cands))
    if not len(cands):
        return []
    f = formulate(cands, table.gpus, residual.free)
    work = LP_WORK_PER_NNZ * (f.capacity.nnz + f.assign.nnz)
    if work > effort.left:
        return []
    effort.spend(work)
    result = solve_lp(f, LP_TIME_LIMIT_FACTOR * effort.budget_s)
    if result.status != 0 or result.x is None:
        return []
    x = np.asarray(result.x)
    out = []
    by_weight = _round_by_weight(table, books, current, residual, a, f, x)
    if by_weight is not None:
        out.append(by_weight)
    if f.capacity.shape[0]:
        prices = _capacity_prices(f, residual, -np.asarray(result.ineqlin.marginals))
        priced = _round_by_prices(table, books, current, residual, a, joint, prices)
        if priced is not None:
            out.append(priced)
    return out


def _round_by_weight(
    table: JobTable, books: Books, current: CurrentPlans, residual: CapacityLedger,
    a: Assignment, f: Formulation, x: FloatArray,
) -> tuple[Assignment, CapacityLedger] | None:
    cands: CandidateSet = f.cands
    out, ledger = a.copy(), residual.copy()
    placer = Placer(table, books, current, ledger)
    order = np.lexsort((cands.score, -x, cands.job))
    first = np.searchsorted(cands.job[order], f.jobs)
    last = np.searchsorted(cands.job[order], f.jobs, side="right")
    peak = np.array([x[order[s]] for s in first])
    rank = {int(j): r for r, j in enumerate(table.order())}
    visit = sorted(range(len(f.jobs)), key=lambda k: (-round(float(peak[k]), 6),
                                                      rank[int(f.jobs[k])]))
    for k in visit:
        j = int(f.jobs[k])
        d, gpus = float(table.d[j]), int(table.gpus[j])
        weighted = [int(c) for c in order[first[k]:last[k]] if x[c] > 1e-6]
        chosen = next((c for c in weighted if ledger.fits(
            int(cands.row[c]), float(cands.start_x[c]), d, gpus)), None)
        if chosen is not None:
            placer.commit(out, j, int(cands.row[chosen]), float(cands.start_x[chosen]),
                          float(cands.score[chosen]))
        elif not _place_best(placer, out, j):
            return None
    return out, ledger


def _place_best(placer: Placer, a: Assignment, j: int) -> bool:
    """Commit ``j`` to its best free candidate (any start if none next to a break is free)."""
    for every in (False, True):
        found = placer.best_feasible(j, placer.candidates(j, every_start=every))
        if found is not None:
            placer.commit(a, j, found[0], found[1], found[2])
            return True
    return False


def _capacity_prices(f: Formulation, residual: CapacityLedger, duals: FloatArray) -> FloatArray:
    """The LP's capacity prices per GPU-slot as an ``(R, S)`` array (0 where not binding)."""
    prices = np.zeros(residual.free.size)
    prices[f.cells] = np.maximum(duals, 0.0)
    out: FloatArray = prices.reshape(residual.free.shape)
    return out


def _round_by_prices(
    table: JobTable, books: Books, current: CurrentPlans, residual: CapacityLedger,
    a: Assignment, joint: list[int], prices: FloatArray,
) -> tuple[Assignment, CapacityLedger] | None:
    out, ledger = a.copy(), residual.copy()
    placer = Placer(table, books, current, ledger)
    cum = np.zeros((prices.shape[0], prices.shape[1] + 1))
    np.cumsum(prices, axis=1, out=cum[:, 1:])
    movable = set(joint)
    for j in (int(j) for j in table.order() if int(j) in movable):
        c = placer.candidates(j)
        s0 = np.floor(c.starts_x + 1e-9).astype(np.int64)
        s1 = np.minimum(np.maximum(s0 + 1, np.ceil(c.starts_x + table.d[j] - 1e-9)),
                        ledger.n_slots).astype(np.int64)
        toll = table.gpus[j] * (cum[c.rows][:, s1] - cum[c.rows][:, s0])
        steered = Candidates(rows=c.rows, starts_x=c.starts_x, score=c.score + toll)
        found = placer.best_index(j, steered)
        if found is None:
            if not _place_best(placer, out, j):
                return None
            continue
        i, w, _ = found
        placer.commit(out, j, int(c.rows[i]), float(c.starts_x[w]), float(c.score[i, w]))
    return out, ledger


def guard_run_now(table: JobTable, books: Books, ledger: CapacityLedger, a: Assignment) -> None:
    """Move a ``greenlight`` job to run-now at home when its plan would emit more than that on
    the forecast (possible only through the error margin) and run-now has free GPUs."""
    book = books.forecast
    jobs = np.array([j for j in joint_jobs(table, a) if table.policy[j] is Policy.GREENLIGHT
                     and table.home[j] >= 0 and book.priced[table.home[j]]], dtype=np.int64)
    if jobs.size == 0 or books.robust is books.forecast:
        return
    now_cost = book.pointwise_cost(table.home[jobs], table.x_e[jobs], table.d[jobs])
    now_g = now_cost * book.pue[table.home[jobs]]
    placer = Placer(table, books, CurrentPlans(np.zeros(0, np.int64), np.zeros(0)), ledger)
    planned = book.pointwise_cost(a.row[jobs], a.start_x[jobs], table.d[jobs])
    for i, j in enumerate(jobs):
        if int(j) in a.splits:
            runs = placer.windows(a, int(j))
            planned[i] = sum(float(book.pointwise_cost(
                a.row[j:j + 1], np.array([x0]), np.array([x1 - x0]))[0]) for x0, x1 in runs)
    planned_g = planned * book.pue[a.row[jobs]]
    for j in jobs[planned_g > now_g * (1 + 1e-9)]:
        j = int(j)
        home, x_e, d = int(table.home[j]), float(table.x_e[j]), float(table.d[j])
        placer.release(a, j)
        if ledger.fits(home, x_e, d, int(table.gpus[j])):
            placer.commit(a, j, home, x_e, float(a.score[j]))
            a.notes[j] = GUARD_NOTE
        else:
            placer.retake(a, j)
