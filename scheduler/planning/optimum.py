"""The exact optimum, to measure the planner against: a MIP solved with HiGHS.

The time-indexed formulation (``scheduler.planning.formulation``) places every job of a small
instance (a few hundred jobs, a few regions, capacity) with perfect knowledge: it prices on
actuals where the snapshot has them (else on its forecasts), lets every job use every allowed
priced region and start on any slot boundary before its deadline, and runs jobs contiguously
(no splits, no error margin, no stability bonus). Jobs with no start before their deadline at
all are fixed where the planner puts them (as early as possible); jobs the planner made late
for want of capacity may also take their late placement, at a prohibitive score, so the MIP
makes a job late only when it must. The planner's own placement (given a share of the time) is
the incumbent: when HiGHS finds nothing better within ``time_limit_s`` the result is the
planner's, and the notes say so. HiGHS first solves the LP relaxation (a lower bound, nearly
integral here), fixes the jobs it places whole and solves the MIP over the rest, which usually
meets the bound; only otherwise does it take on the whole MIP.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime

import numpy as np

from scheduler.domain import Forecast, Policy
from scheduler.planning.deadlines import (
    adopt,
    hopeless,
    place_within_deadlines,
    with_late_fallbacks,
)
from scheduler.planning.formulation import (
    CandidateSet,
    Formulation,
    enumerate_candidates,
    formulate,
    solve_lp,
    solve_mip,
)
from scheduler.planning.grid import FloatArray, slot_origin
from scheduler.planning.improve import improve
from scheduler.planning.mip_progress import solve_mip_reporting
from scheduler.planning.placement import Placer
from scheduler.planning.plans import build_decision
from scheduler.planning.policies import current_plans
from scheduler.planning.snapshot import Decision, PlanningJob, RegionState, Snapshot

OPTIMUM_NOTE = "exact optimum (MIP)"
# Score of a late placement offered to the MIP: larger than any real placement's grams.
LATE_PENALTY = 1e15
# Budget of the planner's own placement, the MIP's incumbent and fallback.
INCUMBENT_BUDGET_S = 2.0
INCUMBENT_SHARE = 0.1
# Share of the time limit the LP relaxation may take, and when an LP value counts as 1.
LP_SHARE = 0.5
INTEGRAL_TOL = 1e-6
# How many rings of LP-placed jobs the fix-and-solve step may free before giving up.
FIX_RINGS = 3

SolveProgress = Callable[[str, float, float], None]
"""``(stage, best objective g, lower bound g)`` as the solve goes: ``incumbent`` (the planner's
placement), ``lp`` (the relaxation's bound), ``fixed`` (the MIP over the jobs the LP left
fractional), ``mip`` (the whole MIP), ``done``; ``inf``/``-inf`` where none is known yet."""


def perfect_knowledge(snapshot: Snapshot) -> Snapshot:
    """The snapshot every job of which is placed by ``oracle`` on the best data there is."""
    series = {**snapshot.forecasts, **snapshot.actuals}
    jobs = tuple(
        dataclasses.replace(j, policy=Policy.ORACLE, current_plan=None) for j in snapshot.jobs
    )
    return dataclasses.replace(
        snapshot, jobs=jobs, forecasts=series, actuals=series, forecast_error={}
    )


def solve_snapshot(
    snapshot: Snapshot, time_limit_s: float = 60.0, progress: SolveProgress | None = None
) -> Decision:
    """The minimum-emission placement of ``snapshot``'s jobs (see the module docstring).

    Every plan's note says whether HiGHS proved the placement optimal or, stopped by
    ``time_limit_s``, how far from its bound it may be. ``progress`` hears each stage.
    """
    from scheduler.planning.cycle import planning_inputs

    exact = perfect_knowledge(snapshot)
    table, books, base = planning_inputs(exact)
    current = current_plans(table, table.grid)
    incumbent, incumbent_ledger = place_within_deadlines(table, books, current, base)
    incumbent = improve(
        table,
        books,
        current,
        incumbent_ledger,
        incumbent,
        min(INCUMBENT_BUDGET_S, INCUMBENT_SHARE * time_limit_s),
    )
    if progress is not None:
        progress("incumbent", incumbent.objective()[1], -math.inf)
    ledger = base.copy()
    placer = Placer(table, books, current, ledger)
    fixed = set(hopeless(placer, incumbent))
    for j in fixed:
        placer.retake(incumbent, j)
    free_jobs = [j for j in range(len(table)) if j not in fixed]
    cands, penalty = with_late_fallbacks(
        enumerate_candidates(placer, free_jobs, every_start=True),
        incumbent,
        [j for j in incumbent.late if j not in fixed],
        table.d,
        ledger.n_slots,
    )
    solved, bound = incumbent, -math.inf
    if len(cands):
        x, bound = _solve_exact(formulate(cands, table.gpus, ledger.free), time_limit_s, progress)
        if x is not None:
            candidate = adopt(incumbent, cands, x, penalty)
            candidate.splits = {}
            if candidate.objective() <= incumbent.objective():
                solved = candidate
    note = _note(solved.objective()[1], bound)
    if progress is not None:
        progress("done", solved.objective()[1], bound)
    return build_decision(table, books, solved, exact.now, dict.fromkeys(free_jobs, note))


def _solve_exact(
    f: Formulation, time_limit_s: float, progress: SolveProgress | None = None
) -> tuple[FloatArray | None, float]:
    """The best 0/1 solution found (None when none was) and the LP bound (``-inf`` without).

    The LP relaxation comes first: it is a lower bound, and on time-indexed placement it is
    nearly integral, so fixing the jobs it places whole and solving the MIP over the rest is
    fast and often meets the bound (then it is optimal). Otherwise the full MIP gets the time
    left, and the better of the two is kept. ``progress`` hears each stage, and the whole MIP's
    best and bound as HiGHS finds them.
    """
    report = progress or (lambda _stage, _best, _bound: None)
    started = time.perf_counter()
    lp = solve_lp(f, LP_SHARE * time_limit_s)
    bound = float(lp.fun) if lp.x is not None else -math.inf
    report("lp", math.inf, bound)
    best = None
    if lp.x is not None:
        best = _fix_and_solve(f, np.asarray(lp.x), time_limit_s - (time.perf_counter() - started))
        report("fixed", math.inf if best is None else float(f.cands.score @ best), bound)
    if best is None or float(f.cands.score @ best) > bound + _tolerance(bound):
        left_s = time_limit_s - (time.perf_counter() - started)
        result = None
        if left_s > 0 and progress is None:
            result = solve_mip(f, left_s)
        elif left_s > 0:
            result = solve_mip_reporting(f, left_s, lambda _t, b, lb: report("mip", b, lb))
        full = np.asarray(result.x) if result is not None and result.x is not None else None
        if full is not None and (best is None or f.cands.score @ full < f.cands.score @ best):
            best = full
        report("mip", math.inf if best is None else float(f.cands.score @ best), bound)
    return best, bound


def _note(objective_g: float, bound_g: float) -> str:
    if not math.isfinite(bound_g):
        return OPTIMUM_NOTE + ": best found in the time limit (no LP bound)"
    if objective_g <= bound_g + _tolerance(bound_g):
        return OPTIMUM_NOTE + ": proven optimal"
    gap_pct = 100 * (objective_g - bound_g) / max(objective_g, 1e-12)
    return f"{OPTIMUM_NOTE}: best found in the time limit (within {gap_pct:.2f}% of the LP bound)"


def _tolerance(bound: float) -> float:
    return 1e-6 * max(abs(bound), 1.0) if math.isfinite(bound) else 0.0


def _fix_and_solve(f: Formulation, lp_x: FloatArray, time_limit_s: float) -> FloatArray | None:
    """Jobs the LP relaxation places whole keep that candidate; the MIP places the others in
    the GPUs left. When that is infeasible, the whole jobs next to the others (sharing a
    capacity cell with a candidate the LP uses) are freed too, ring by ring. None when no
    ring gives a solution in the time."""
    started = time.perf_counter()
    job_pos = np.searchsorted(f.jobs, f.cands.job)
    chosen = lp_x > 1 - INTEGRAL_TOL
    free_job = np.ones(len(f.jobs), dtype=bool)
    free_job[job_pos[chosen]] = False
    for _ in range(FIX_RINGS):
        x = _solve_freed(f, chosen & ~free_job[job_pos], free_job[job_pos], time_limit_s, started)
        if x is not None or free_job.all():
            return x
        support = free_job[job_pos] & (lp_x > INTEGRAL_TOL)
        cells = np.asarray(f.capacity[:, support].sum(axis=1)).ravel() > 0
        touching = np.asarray(f.capacity[cells].sum(axis=0)).ravel() > 0
        free_job[job_pos[chosen & touching]] = True
    return None


def _solve_freed(
    f: Formulation, fixed: np.ndarray, rest: np.ndarray, time_limit_s: float, started: float
) -> FloatArray | None:
    x = fixed.astype(np.float64)
    if not rest.any():
        return x
    left_s = time_limit_s - (time.perf_counter() - started)
    if left_s <= 0:
        return None
    used = np.asarray(f.capacity @ x) if f.capacity.shape[0] else np.zeros(0)
    whole = np.ones(len(f.jobs), dtype=bool)
    whole[np.searchsorted(f.jobs, f.cands.job[rest])] = False
    sub = dataclasses.replace(
        f,
        cands=_subset(f.cands, rest),
        jobs=f.jobs[~whole],
        assign=f.assign[~whole][:, rest],
        capacity=f.capacity[:, rest],
        free=np.maximum(f.free - used, 0.0),
    )
    result = solve_mip(sub, left_s)
    if result.x is None:
        return None
    x[rest] = np.round(np.asarray(result.x))
    return x


def _subset(cands: CandidateSet, keep: np.ndarray) -> CandidateSet:
    return CandidateSet(
        job=cands.job[keep],
        row=cands.row[keep],
        start_x=cands.start_x[keep],
        score=cands.score[keep],
        a=cands.a[keep],
        b=cands.b[keep],
    )


def solve_offline(
    jobs: Sequence[PlanningJob],
    regions: Sequence[RegionState],
    intensity: Mapping[str, Forecast],
    step_s: int,
    time_limit_s: float = 120.0,
    start: datetime | None = None,
) -> Decision:
    """The offline optimum of a whole run: every job known in advance, each free to start from
    its arrival (``earliest_start``) until its deadline, on the actual ``intensity`` per region.

    ``start`` (default: the earliest arrival) is where the grid begins.
    """
    snapshot = offline_snapshot(jobs, regions, intensity, step_s, start)
    return solve_snapshot(snapshot, time_limit_s)


def offline_snapshot(
    jobs: Sequence[PlanningJob],
    regions: Sequence[RegionState],
    intensity: Mapping[str, Forecast],
    step_s: int,
    start: datetime | None = None,
) -> Snapshot:
    """The one snapshot ``solve_offline`` solves (see there)."""
    first = start or min(j.earliest_start for j in jobs)
    return Snapshot(
        now=slot_origin(first, step_s),
        jobs=tuple(jobs),
        regions=tuple(regions),
        forecasts=dict(intensity),
        actuals=dict(intensity),
        step_s=step_s,
    )


def lp_lower_bound_g(snapshot: Snapshot, time_limit_s: float = 60.0) -> float:
    """A lower bound (g, on the grid's prices) on the emissions of any placement of the
    snapshot's jobs that meets every deadline in one piece: the LP relaxation of the exact
    problem. Jobs with no start before their deadline are left out; ``inf`` when HiGHS finds
    no LP solution in ``time_limit_s`` (or the capacity cannot hold the jobs at all)."""
    from scheduler.planning.cycle import planning_inputs

    table, books, base = planning_inputs(perfect_knowledge(snapshot))
    placer = Placer(table, books, current_plans(table, table.grid), base.copy())
    cands = enumerate_candidates(placer, list(range(len(table))), every_start=True)
    if not len(cands):
        return 0.0
    result = solve_lp(formulate(cands, table.gpus, base.free), time_limit_s)
    return float(result.fun) if result.x is not None else math.inf
