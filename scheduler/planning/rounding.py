"""Starting points rounded from the LP relaxation of joint placement (HiGHS).

The LP relaxation of the time-indexed formulation (``scheduler.planning.formulation``) is nearly
integral on contended snapshots (on ``bench/regions.py``'s 150 jobs it places 87 whole and sits
within 2% of the optimum), so rounding it well is most of the way to the optimum. Its
fractional jobs are mostly the large ones, which share regions with many small ones in
fractions no schedule can realise; so the rounding visits jobs largest first (GPUs x duration),
each taking a free candidate among those the LP gives weight to (else its best free one), and
the small jobs fill in around them. Two roundings are made, one taking each job's candidate of
highest LP weight first, one its cheapest weighted candidate first (neither is always the
better, and each costs a few hundredths of a second at 150 jobs). A job that finds no room before
its deadline is placed by lifting the jobs in the way
(``scheduler.planning.search.place_by_ejecting``); when even that fails the rounding is
dropped.

When the LP runs: its cost grows with the nonzeros of the formulation (``LP_WORK_PER_NNZ``);
it runs when that fits the work left, and, whatever the budget, when it is under ``LP_FLOOR_S``.
That floor is the one size-dependent rule of the budget: on a snapshot small enough for the LP
to take well under a second, its rounding is worth more than any amount of local search (on
``bench/regions.py``: 93.6% of the optimum's saving with local search alone at the default 0.3 s,
98% with the rounding), and a planning cycle runs every 30 s. Large snapshots (the 10k-job
cycle) never reach it: ``LP_MAX_CANDIDATES`` bounds the candidates before anything is built.
"""

from __future__ import annotations

import numpy as np

from scheduler.planning.capacity import CapacityLedger
from scheduler.planning.formulation import (
    Formulation,
    enumerate_candidates,
    formulate,
    solve_lp,
)
from scheduler.planning.grid import FloatArray
from scheduler.planning.placement import Assignment, Placer
from scheduler.planning.policies import Books, CurrentPlans
from scheduler.planning.search import (
    WORK_PER_CANDIDATES_CALL,
    WORK_PER_MOVE,
    WORK_PER_S,
    WORK_PER_SCORE,
    Effort,
    place_by_ejecting,
)
from scheduler.planning.table import JobTable

# HiGHS dual simplex without presolve, measured on two cores (bench/regions.py snapshots from
# 60 to 300 jobs): 0.35-0.75 us per nonzero.
LP_WORK_PER_NNZ = 0.8
LP_MAX_CANDIDATES = 300_000
# An LP estimated under this many seconds runs whatever the budget (see the module docstring).
LP_FLOOR_S = 1.0
# A wall-clock guard for HiGHS on a pathological LP: this many times its estimated time, at
# least LP_TIME_LIMIT_MIN_S. The work estimate decides in practice.
LP_TIME_LIMIT_FACTOR = 10.0
LP_TIME_LIMIT_MIN_S = 0.5
# LP values below this count as zero.
WEIGHT_TOL = 1e-6
# Repair of a stranded job: its cheapest candidates tried, and jobs lifted for one.
REPAIR_TRIES = 40
REPAIR_EJECT = 16


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
    """Placements of ``joint`` rounded from the LP relaxation over ``residual`` (the capacity
    the other jobs leave); none when the LP is too big for the budget and the floor, or HiGHS
    finds no solution. Jobs outside ``joint`` keep their place in ``a``."""
    placer = Placer(table, books, current, residual)
    cands = enumerate_candidates(placer, joint)
    effort.spend(len(joint) * WORK_PER_CANDIDATES_CALL + WORK_PER_SCORE * len(cands))
    if not len(cands):
        return []
    f = formulate(cands, table.gpus, residual.free)
    work = LP_WORK_PER_NNZ * (f.capacity.nnz + f.assign.nnz)
    if work > max(effort.left, LP_FLOOR_S * WORK_PER_S):
        return []
    effort.spend(work)
    time_limit_s = max(LP_TIME_LIMIT_FACTOR * work / WORK_PER_S, LP_TIME_LIMIT_MIN_S)
    result = solve_lp(f, time_limit_s, presolve=False)
    if result.status != 0 or result.x is None:
        return []
    x = np.asarray(result.x)
    out = []
    for cheapest_first in (False, True):
        rounded = round_largest_first(
            table, books, current, residual, a, f, x, cheapest_first=cheapest_first
        )
        effort.spend(WORK_PER_MOVE * len(joint))
        if rounded is not None:
            out.append(rounded)
    return out


def round_largest_first(
    table: JobTable,
    books: Books,
    current: CurrentPlans,
    residual: CapacityLedger,
    a: Assignment,
    f: Formulation,
    x: FloatArray,
    *,
    cheapest_first: bool = False,
) -> tuple[Assignment, CapacityLedger] | None:
    """The LP solution ``x`` over ``f`` rounded largest job first (see the module docstring),
    each job trying its weighted candidates by weight (or by score, ``cheapest_first``); None
    when a job cannot be placed before its deadline."""
    cands = f.cands
    out, ledger = a.copy(), residual.copy()
    placer = Placer(table, books, current, ledger)
    # Per job: its candidates by LP weight, then score (or the other way round).
    keys = (-x, cands.score) if cheapest_first else (cands.score, -x)
    order = np.lexsort((*keys, cands.job))
    first = np.searchsorted(cands.job[order], f.jobs)
    last = np.searchsorted(cands.job[order], f.jobs, side="right")
    rank = {int(j): r for r, j in enumerate(table.order())}
    area = table.gpus[f.jobs] * table.d[f.jobs]
    visit = sorted(range(len(f.jobs)), key=lambda k: (-float(area[k]), rank[int(f.jobs[k])]))
    placed: list[int] = []
    stranded: list[int] = []
    for k in visit:
        j = int(f.jobs[k])
        d, gpus = float(table.d[j]), int(table.gpus[j])
        weighted = [int(c) for c in order[first[k] : last[k]] if x[c] > WEIGHT_TOL]
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
            stranded.append(j)
            continue
        placed.append(j)
    for j in stranded:
        movable = np.array(sorted(placed), dtype=np.int64)
        if not place_by_ejecting(placer, out, j, movable, REPAIR_TRIES, REPAIR_EJECT):
            return None
        placed.append(j)
    return out, ledger


def place_best(placer: Placer, a: Assignment, j: int) -> bool:
    """Commit ``j`` to its best free candidate (any start if none next to a break is free)."""
    for every in (False, True):
        found = placer.best_feasible(j, placer.candidates(j, every_start=every))
        if found is not None:
            placer.commit(a, j, found[0], found[1], found[2])
            return True
    return False
