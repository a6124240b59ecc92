"""The deadline guarantee: no job planned late while a placement without it exists.

The greedy and its repair orders (``scheduler.planning.placement.place_jobs``) are heuristics:
deciding whether all jobs fit before their deadlines is NP-hard in general. When they still
leave jobs late, each late job is first placed by lifting the jobs in its way and re-placing
them (``repair_by_ejecting``: cheap, deterministic); when some are still late and the snapshot
is small, HiGHS decides: the time-indexed MIP over every start, where each late job may also
keep its late placement at a prohibitive score, so the solution makes the fewest jobs late
(then emits least). The search is bounded by a node count, not a clock, so the cycle stays
deterministic.
"""

from __future__ import annotations

import numpy as np

from scheduler.planning.capacity import CapacityLedger, spans
from scheduler.planning.formulation import (
    CandidateSet,
    enumerate_candidates,
    formulate,
    solve_mip,
)
from scheduler.planning.grid import FloatArray
from scheduler.planning.placement import Assignment, Placer, place_jobs
from scheduler.planning.policies import Books, CurrentPlans
from scheduler.planning.search import place_by_ejecting
from scheduler.planning.table import JobTable

# Candidates of a late job tried, and jobs lifted at most, by the ejection repair.
REPAIR_TRIES = 200
REPAIR_EJECT = 16
# The MIP is asked only when its capacity matrix is small enough that HiGHS settles it well
# within the guard below (measured: ~3M nonzeros is ~30 s of root LP on 2 cores; a cycle and
# a submit wait on it). Bigger snapshots keep the greedy's and the repair's placement.
RESCUE_MAX_NONZEROS = 400_000
RESCUE_NODE_LIMIT = 2_000
# A wall-clock guard for HiGHS; the size bound and node limit decide in practice.
RESCUE_TIME_LIMIT_S = 10.0


def place_within_deadlines(
    table: JobTable,
    books: Books,
    current: CurrentPlans,
    base: CapacityLedger,
    *,
    repair: bool = True,
) -> tuple[Assignment, CapacityLedger]:
    """``place_jobs``, then, with ``repair``, the ejection repair and the MIP rescue of its
    late jobs when there are any and the snapshot is small enough. Returns the assignment and
    the ledger it leaves."""
    a, ledger = place_jobs(table, books, current, base)
    if not a.late or not repair:
        return a, ledger
    a, ledger = repair_by_ejecting(table, books, current, a, ledger)
    if not a.late:
        return a, ledger
    rescued = rescue(table, books, current, base, a)
    if rescued is None or rescued[0].objective() >= a.objective():
        return a, ledger
    return rescued


def repair_by_ejecting(
    table: JobTable,
    books: Books,
    current: CurrentPlans,
    a: Assignment,
    ledger: CapacityLedger,
) -> tuple[Assignment, CapacityLedger]:
    """Each late job (least slack first) placed before its deadline by lifting the fewest
    placed jobs in its way and re-placing them before theirs (``search.place_by_ejecting``).
    Cheap and deterministic, it settles most stranded jobs before the MIP is asked; a job it
    cannot place keeps its late placement. Returns a new assignment and ledger."""
    out, repaired = a.copy(), ledger.copy()
    placer = Placer(table, books, current, repaired)
    rank = {int(j): r for r, j in enumerate(table.order())}
    for j in sorted(out.late, key=rank.__getitem__):
        if table.x_l[j] < table.x_e[j]:
            continue  # past its latest start already: no placement makes it
        # Placed and not late, ascending: a mask, not a loop over every job per late job
        # (a second and more of a 100,000-job cycle with a few dozen late).
        free = out.row >= 0
        free[list(out.late)] = False
        movable = np.flatnonzero(free).astype(np.int64)
        old = (int(out.row[j]), float(out.start_x[j]), float(out.score[j]))
        placer.release(out, j)
        if place_by_ejecting(placer, out, j, movable, REPAIR_TRIES, REPAIR_EJECT):
            del out.late[j]
            out.notes.pop(j, None)
        else:
            placer.commit(out, j, *old)
    return out, repaired


def with_late_fallbacks(
    cands: CandidateSet,
    a: Assignment,
    late: list[int],
    d: FloatArray,
    n_slots: int,
) -> tuple[CandidateSet, float]:
    """``cands`` plus, for each job in ``late``, its late placement in ``a`` at a score above
    any whole placement's (returned with the set), so a MIP over them stays feasible and makes
    jobs late only when it must."""
    penalty = 10.0 * (float(np.abs(cands.score).sum()) + 1.0)
    jobs = np.array([j for j in late if a.row[j] >= 0], dtype=np.int64)
    if jobs.size == 0:
        return cands, penalty
    start = a.start_x[jobs]
    lo, hi = spans(start, d[jobs], n_slots)
    return CandidateSet(
        job=np.concatenate((cands.job, jobs)),
        row=np.concatenate((cands.row, a.row[jobs])),
        start_x=np.concatenate((cands.start_x, start)),
        score=np.concatenate((cands.score, np.full(jobs.size, penalty))),
        a=np.concatenate((cands.a, lo)),
        b=np.concatenate((cands.b, hi)),
    ), penalty


def adopt(a: Assignment, cands: CandidateSet, x: FloatArray, penalty: float) -> Assignment:
    """``a`` with the MIP solution ``x`` over ``cands`` applied; jobs that took a real
    candidate are no longer late."""
    out = a.copy()
    for c in np.flatnonzero(x > 0.5):
        j = int(cands.job[c])
        out.row[j], out.start_x[j] = cands.row[c], cands.start_x[c]
        out.splits.pop(j, None)
        if cands.score[c] < penalty:
            out.score[j] = cands.score[c]
            if out.late.pop(j, None) is not None:
                out.notes.pop(j, None)
    return out


def hopeless(placer: Placer, a: Assignment) -> list[int]:
    """Late jobs with no start before their deadline at all, capacity aside."""
    t = placer.table
    out = []
    for j in a.late:
        c = placer.candidates(j, every_start=True)
        meets = c.starts_x <= t.x_l[j] + 1e-9
        if not (np.isfinite(c.score) & meets[None, :]).any():
            out.append(j)
    return out


def rescue(
    table: JobTable,
    books: Books,
    current: CurrentPlans,
    base: CapacityLedger,
    a: Assignment,
) -> tuple[Assignment, CapacityLedger] | None:
    """The MIP placement with the fewest late jobs, or None when the snapshot is too big or
    HiGHS found nothing."""
    ledger = base.copy()
    placer = Placer(table, books, current, ledger)
    fixed = set(hopeless(placer, a))
    if len(fixed) == len(a.late):
        return None
    for j in fixed:
        placer.retake(a, j)
    free = [j for j in range(len(table)) if j not in fixed]
    if _nonzero_bound(table, free) > RESCUE_MAX_NONZEROS:
        return None
    cands, penalty = with_late_fallbacks(
        enumerate_candidates(placer, free, every_start=True),
        a,
        [j for j in a.late if j not in fixed],
        table.d,
        ledger.n_slots,
    )
    result = solve_mip(
        formulate(cands, table.gpus, ledger.free),
        RESCUE_TIME_LIMIT_S,
        mip_rel_gap=1e-4,
        node_limit=RESCUE_NODE_LIMIT,
    )
    if result.x is None:
        return None
    out = adopt(a, cands, np.asarray(result.x), penalty)
    for j in free:
        placer.retake(out, j)
    return out, ledger


def _nonzero_bound(table: JobTable, jobs: list[int]) -> int:
    """An upper bound on the MIP's capacity-matrix entries: per candidate start and region,
    the slots its run covers."""
    idx = np.array(jobs, dtype=np.int64)
    last = np.minimum(table.x_l[idx], table.grid.n_slots - table.d[idx])
    starts = np.maximum(np.floor(last) - np.floor(table.x_e[idx]), 0) + 1
    regions = np.array([len(table.allowed[j]) for j in jobs])
    covered = np.ceil(table.d[idx]) + 1
    return int((starts * regions * covered).sum())
