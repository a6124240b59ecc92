"""The exact optimum, to measure the planner against: a MIP solved with HiGHS.

The time-indexed formulation (``scheduler.planning.formulation``) places every job of a small
instance (a few hundred jobs, a few regions, capacity) with perfect knowledge: it prices on
actuals where the snapshot has them (else on its forecasts), lets every job use every allowed
priced region and start on any slot boundary before its deadline, and runs jobs contiguously
(no splits, no error margin, no stability bonus). Jobs that cannot meet their deadline whatever
the others do are fixed where the planner puts them (as early as possible). The planner's own
placement is the incumbent: if HiGHS finds nothing better within ``time_limit_s`` the result is
the planner's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import datetime

import numpy as np

from scheduler.domain import Forecast, Policy
from scheduler.planning.formulation import (
    CandidateSet,
    enumerate_candidates,
    formulate,
    solve_mip,
)
from scheduler.planning.grid import FloatArray, slot_origin
from scheduler.planning.placement import Assignment, Placer, place_jobs
from scheduler.planning.plans import build_decision
from scheduler.planning.policies import current_plans
from scheduler.planning.snapshot import Decision, PlanningJob, RegionState, Snapshot

OPTIMUM_NOTE = "exact optimum (MIP)"


def perfect_knowledge(snapshot: Snapshot) -> Snapshot:
    """The snapshot every job of which is placed by ``oracle`` on the best data there is."""
    series = {**snapshot.forecasts, **snapshot.actuals}
    jobs = tuple(dataclasses.replace(j, policy=Policy.ORACLE, current_plan=None)
                 for j in snapshot.jobs)
    return dataclasses.replace(snapshot, jobs=jobs, forecasts=series, actuals=series,
                               forecast_error={})


def solve_snapshot(snapshot: Snapshot, time_limit_s: float = 60.0) -> Decision:
    """The minimum-emission placement of ``snapshot``'s jobs (see the module docstring).

    Plans carry ``note = OPTIMUM_NOTE`` when the MIP improved on the planner's placement.
    """
    from scheduler.planning.cycle import planning_inputs

    exact = perfect_knowledge(snapshot)
    table, books, base = planning_inputs(exact)
    current = current_plans(table, table.grid)
    incumbent, _ = place_jobs(table, books, current, base)
    fixed = sorted(incumbent.late)
    ledger = base.copy()
    placer = Placer(table, books, current, ledger)
    for j in fixed:
        ledger.take(int(incumbent.row[j]), float(incumbent.start_x[j]), float(table.d[j]),
                    int(table.gpus[j]))
    free_jobs = [j for j in range(len(table)) if j not in incumbent.late]
    cands = enumerate_candidates(placer, free_jobs, every_start=True)
    solved = incumbent
    if len(cands):
        result = solve_mip(formulate(cands, table.gpus, ledger.free), time_limit_s)
        if result.x is not None:
            solved = _from_solution(incumbent, cands, np.asarray(result.x))
    if solved.objective() > incumbent.objective():
        solved = incumbent
    extra = dict.fromkeys(free_jobs, OPTIMUM_NOTE) if solved is not incumbent else None
    return build_decision(table, books, solved, exact.now, extra)


def _from_solution(incumbent: Assignment, cands: CandidateSet, x: FloatArray) -> Assignment:
    out = incumbent.copy()
    chosen = np.flatnonzero(x > 0.5)
    out.row[cands.job[chosen]] = cands.row[chosen]
    out.start_x[cands.job[chosen]] = cands.start_x[chosen]
    out.score[cands.job[chosen]] = cands.score[chosen]
    out.notes = {j: n for j, n in out.notes.items() if j in out.late}
    return out


def solve_offline(
    jobs: Sequence[PlanningJob], regions: Sequence[RegionState],
    intensity: Mapping[str, Forecast], step_s: int, time_limit_s: float = 120.0,
    start: datetime | None = None,
) -> Decision:
    """The offline optimum of a whole run: every job known in advance, each free to start from
    its arrival (``earliest_start``) until its deadline, on the actual ``intensity`` per region.

    ``start`` (default: the earliest arrival) is where the grid begins.
    """
    first = start or min(j.earliest_start for j in jobs)
    snapshot = Snapshot(now=slot_origin(first, step_s), jobs=tuple(jobs),
                        regions=tuple(regions), forecasts=dict(intensity),
                        actuals=dict(intensity), step_s=step_s)
    return solve_snapshot(snapshot, time_limit_s)
