"""The offline optimum of a simulated run, as one more row of results (label ``optimum``).

With capacity limits the planning core's exact solver (``solve_snapshot``, a MIP with HiGHS)
places every job knowing all arrivals and the actual intensity in advance. Without capacity
limits jobs do not interact, so the per-job best placement on actuals, which the ``oracle``
policy computes job by job, is already the offline optimum: it is reused (or run) instead of a
MIP whose size would grow with the whole trace.
"""

from __future__ import annotations

from dataclasses import replace

from scheduler.domain import Policy, SeriesKind
from scheduler.planning.optimum import SolveProgress, lp_lower_bound_g, solve_snapshot
from scheduler.planning.optimum import offline_snapshot as offline_snapshot_of
from scheduler.planning.snapshot import Decision, RegionState, Snapshot
from scheduler.simulation.engine import JobRecord, PolicyRun, runs_following, simulate
from scheduler.simulation.grid import epoch_s, from_epoch_s, grid_series
from scheduler.simulation.scenario import Scenario, ScenarioView, planning_job

OPTIMUM_LABEL = "optimum"


def optimum_run(
    scenario: Scenario,
    runs: list[PolicyRun],
    *,
    max_jobs: int,
    time_limit_s: float,
    notes: list[str],
    progress: SolveProgress | None = None,
) -> PolicyRun | None:
    """The optimum's run, or None (with a line in ``notes``) when the instance is too large.
    ``progress`` hears the exact solve's stages (see ``SolveProgress``)."""
    if scenario.unlimited:
        oracle = next((r for r in runs if r.label == Policy.ORACLE.value), None)
        oracle = oracle or simulate(scenario, Policy.ORACLE)
        notes.append("optimum = oracle: without capacity limits jobs are independent")
        return replace(oracle, label=OPTIMUM_LABEL, cycles=0)
    if len(scenario.jobs) > max_jobs:
        notes.append(
            f"optimum skipped: {len(scenario.jobs)} jobs > {max_jobs} (--optimum-max-jobs)"
        )
        return None
    if any(j.interruptible for j in scenario.jobs):
        notes.append("optimum runs interruptible jobs in one piece (an upper bound for them)")
    return solve_offline_run(scenario, time_limit_s, progress)


def solve_offline_run(
    scenario: Scenario, time_limit_s: float, progress: SolveProgress | None = None
) -> PolicyRun:
    """Every job of ``scenario`` placed by the exact offline solver on actual intensity."""
    decision = solve_snapshot(_offline_truth(scenario), time_limit_s, progress)
    return decision_run(scenario, decision, OPTIMUM_LABEL)


def offline_lower_bound_g(scenario: Scenario, time_limit_s: float) -> float:
    """The LP lower bound (g) on the offline optimum's emissions (see ``lp_lower_bound_g``):
    no schedule of the run that keeps jobs in one piece emits less on the grid's actuals."""
    return lp_lower_bound_g(_offline_truth(scenario), time_limit_s)


def _offline_truth(scenario: Scenario) -> Snapshot:
    grid = scenario.grid
    jobs = [
        planning_job(
            j,
            now_s=epoch_s(j.arrival),
            remaining_s=j.duration_s,
            policy=Policy.ORACLE,
            current=None,
        )
        for j in scenario.jobs
    ]
    total_gpus = max(sum(j.gpus for j in scenario.jobs), 1)
    regions = [
        RegionState(name=r.name, pue=r.pue, gpus=total_gpus if r.gpus is None else r.gpus)
        for r in scenario.regions
    ]
    issued = from_epoch_s(grid.start_s)
    intensity = {
        r.name: grid_series(
            r.zone,
            "simulation",
            grid.actuals[r.name],
            grid.start_s,
            grid.step_s,
            issued,
            SeriesKind.ACTUAL,
        )
        for r in scenario.regions
    }
    return offline_snapshot_of(jobs, regions, intensity, grid.step_s)


def offline_snapshot(scenario: Scenario, policy: Policy) -> Snapshot:
    """One snapshot holding every job of ``scenario`` at the first arrival, each free to start
    from its own arrival: the whole run planned at once, on the scenario's forecasts."""
    view = ScenarioView(scenario)
    first = min(epoch_s(j.arrival) for j in scenario.jobs)
    index = scenario.grid.index(first)
    now_s = scenario.grid.time_s(index)
    jobs = [
        planning_job(j, now_s=now_s, remaining_s=j.duration_s, policy=policy, current=None)
        for j in scenario.jobs
    ]
    return view.snapshot(index, jobs, (), policy)


def decision_run(scenario: Scenario, decision: Decision, label: str) -> PolicyRun:
    """The runs a decision's plans give when every job runs its planned windows in full (no run
    before its arrival, none past the grid)."""
    records = []
    for job in scenario.jobs:
        record = JobRecord(job=job, late=job.id in decision.late)
        plan = decision.plans.get(job.id)
        if plan is not None:
            record.runs.extend(
                runs_following(plan, epoch_s(job.arrival), job.duration_s, scenario.grid.end_s)
            )
        records.append(record)
    return PolicyRun(label=label, records=tuple(records), cycles=1)
