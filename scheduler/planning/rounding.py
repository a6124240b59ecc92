"""Starting points rounded from the LP relaxation of joint placement (HiGHS).

When the candidates of the jointly placed jobs fit the budget, the LP relaxation of the
time-indexed formulation is solved and rounded two ways: jobs the LP places most integrally
first, each taking its candidate of highest LP weight that is still free; and a greedy on scores
plus the LP's capacity prices (its duals), which steers jobs away from the slots everyone wants.
A rounding that cannot place some job before its deadline is dropped.
"""

from __future__ import annotations

import numpy as np

from scheduler.planning.capacity import CapacityLedger
from scheduler.planning.formulation import (
    CandidateSet,
    Formulation,
    enumerate_candidates,
    formulate,
    solve_lp,
)
from scheduler.planning.grid import FloatArray
from scheduler.planning.placement import Assignment, Placer
from scheduler.planning.policies import Books, Candidates, CurrentPlans
from scheduler.planning.search import WORK_PER_CANDIDATES_CALL, WORK_PER_SCORE, Effort
from scheduler.planning.table import JobTable

LP_WORK_PER_NNZ = 8.0
LP_MAX_CANDIDATES = 300_000
# A wall-clock guard for HiGHS on a pathological LP; the work budget decides in practice.
LP_TIME_LIMIT_FACTOR = 20.0


def candidate_count(table: JobTable, jobs: list[int]) -> int:
    """An upper bound on the candidates of ``jobs`` (regions x starts), without building them."""
    idx = np.array(jobs, dtype=np.int64)
    last = np.minimum(table.x_l[idx], table.grid.n_slots - table.d[idx])
    starts = np.maximum(np.floor(last) - np.floor(table.x_e[idx]), 0) + 1
    regions = np.array([len(table.allowed[j]) for j in jobs])
    return int((starts * regions).sum())


def lp_starts(
    table: JobTable,
    books: Books,
    current: CurrentPlans,
    residual: CapacityLedger,
    a: Assignment,
    joint: list[int],
    effort: Effort,
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
    table: JobTable,
    books: Books,
    current: CurrentPlans,
    residual: CapacityLedger,
    a: Assignment,
    f: Formulation,
    x: FloatArray,
) -> tuple[Assignment, CapacityLedger] | None:
    cands: CandidateSet = f.cands
    out, ledger = a.copy(), residual.copy()
    placer = Placer(table, books, current, ledger)
    order = np.lexsort((cands.score, -x, cands.job))
    first = np.searchsorted(cands.job[order], f.jobs)
    last = np.searchsorted(cands.job[order], f.jobs, side="right")
    peak = np.array([x[order[s]] for s in first])
    rank = {int(j): r for r, j in enumerate(table.order())}
    visit = sorted(
        range(len(f.jobs)), key=lambda k: (-round(float(peak[k]), 6), rank[int(f.jobs[k])])
    )
    for k in visit:
        j = int(f.jobs[k])
        d, gpus = float(table.d[j]), int(table.gpus[j])
        weighted = [int(c) for c in order[first[k] : last[k]] if x[c] > 1e-6]
        chosen = next(
            (
                c
                for c in weighted
                if ledger.fits(int(cands.row[c]), float(cands.start_x[c]), d, gpus)
            ),
            None,
        )
        if chosen is not None:
            placer.commit(
                out,
                j,
                int(cands.row[chosen]),
                float(cands.start_x[chosen]),
                float(cands.score[chosen]),
            )
        elif not place_best(placer, out, j):
            return None
    return out, ledger


def place_best(placer: Placer, a: Assignment, j: int) -> bool:
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
    table: JobTable,
    books: Books,
    current: CurrentPlans,
    residual: CapacityLedger,
    a: Assignment,
    joint: list[int],
    prices: FloatArray,
) -> tuple[Assignment, CapacityLedger] | None:
    out, ledger = a.copy(), residual.copy()
    placer = Placer(table, books, current, ledger)
    cum = np.zeros((prices.shape[0], prices.shape[1] + 1))
    np.cumsum(prices, axis=1, out=cum[:, 1:])
    movable = set(joint)
    for j in (int(j) for j in table.order() if int(j) in movable):
        c = placer.candidates(j)
        s0 = np.floor(c.starts_x + 1e-9).astype(np.int64)
        s1 = np.minimum(
            np.maximum(s0 + 1, np.ceil(c.starts_x + table.d[j] - 1e-9)), ledger.n_slots
        ).astype(np.int64)
        toll = table.gpus[j] * (cum[c.rows][:, s1] - cum[c.rows][:, s0])
        steered = Candidates(rows=c.rows, starts_x=c.starts_x, score=c.score + toll)
        found = placer.best_index(j, steered)
        if found is None:
            if not place_best(placer, out, j):
                return None
            continue
        i, w, _ = found
        placer.commit(out, j, int(c.rows[i]), float(c.starts_x[w]), float(c.score[i, w]))
    return out, ledger
