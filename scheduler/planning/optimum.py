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
planner's, and the notes say so.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import datetime

import numpy as np
from scipy.optimize import OptimizeResult

from scheduler.domain import Forecast, Policy
from scheduler.planning.deadlines import (
    adopt,
    hopeless,
    place_within_deadlines,
    with_late_fallbacks,
)
from scheduler.planning.formulation import (
    enumerate_candidates,
    formulate,
    solve_mip,
)
from scheduler.planning.grid import slot_origin
from scheduler.planning.improve import improve
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


def perfect_knowledge(snapshot: Snapshot) -> Snapshot:
    """The snapshot every job of which is placed by ``oracle`` on the best data there is."""
    series = {**snapshot.forecasts, **snapshot.actuals}
    jobs = tuple(
        dataclasses.replace(j, policy=Policy.ORACLE, current_plan=None) for j in snapshot.jobs
    )
    return dataclasses.replace(
        snapshot, jobs=jobs, forecasts=series, actuals=series, forecast_error={}
    )


def solve_snapshot(snapshot: Snapshot, time_limit_s: float = 60.0) -> Decision:
    """The minimum-emission placement of ``snapshot``'s jobs (see the module docstring).

    Every plan's note says whether HiGHS proved the placement optimal or, stopped by
    ``time_limit_s``, how far from its bound it may be.
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
    note = OPTIMUM_NOTE + ": the planner's placement (no MIP solution)"
    solved = incumbent
    if len(cands):
        result = solve_mip(formulate(cands, table.gpus, ledger.free), time_limit_s)
        if result.x is not None:
            candidate = adopt(incumbent, cands, np.asarray(result.x), penalty)
            candidate.splits = {}
            if candidate.objective() <= incumbent.objective():
                solved = candidate
            note = _status_note(result)
    return build_decision(table, books, solved, exact.now, dict.fromkeys(free_jobs, note))


def _status_note(result: OptimizeResult) -> str:
    if result.status == 0:
        return OPTIMUM_NOTE + ": proven optimal"
    gap = getattr(result, "mip_gap", None)
    bound = f" (within {100 * gap:.1f}% of HiGHS' bound)" if gap is not None else ""
    return f"{OPTIMUM_NOTE}: best found in the time limit{bound}"


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
    first = start or min(j.earliest_start for j in jobs)
    snapshot = Snapshot(
        now=slot_origin(first, step_s),
        jobs=tuple(jobs),
        regions=tuple(regions),
        forecasts=dict(intensity),
        actuals=dict(intensity),
        step_s=step_s,
    )
    return solve_snapshot(snapshot, time_limit_s)
