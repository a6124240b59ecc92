"""Discrete-event replay of jobs arriving online through the service's own planning cycle.

Each cycle hands the planner the jobs that have arrived and not started (re-planned every time),
the GPUs that running jobs hold, and the forecasts as they stood at that moment. Accounting
happens later on actuals (``metrics``).

As in the service, planning and dispatch run on different clocks. Planning cycles run on the
planning interval (``Scenario.cycle_s``), so an arrival or freed capacity waits for the next
cycle; dispatch is far more frequent in the service (seconds), so here a job starts at the first
grid step at or after its plan's start, and a run's end is seen at the first step after it.

A cycle runs only when something can change a plan: a job arrived, a run ended (capacity freed,
or an interruptible job to re-place), a new forecast was issued, or a job is still unplaced. A
job whose plan the engine refused because it would overcommit a region (the planner's fallback
for a job that fits nowhere before its deadline) is *held*: only freed capacity, an arrival or a
new forecast can change its plan, so it waits for one of those instead of being re-planned at
every step. A job that asks for more GPUs than any of its regions has never runs and is never
handed to the planner. With ``every_cycle=True`` the planner runs at every cycle while jobs
wait, as the service does. The two agree when a re-plan with nothing changed but ``now`` keeps
every plan (the tests check ``now``, ``lowest-window`` and ``wait-awhile``); ``carbon-time``
weighs the wait from ``now``, and the joint policies' improvement search (``greenlight``,
``oracle``) may find a better plan on a later look, so for those ``every_cycle`` is the faithful,
slower replay.

Fast path: with unlimited capacity and static forecasts (one value per valid time, whatever the
issue time) jobs do not interact and a plan never changes once made, so each job is planned once,
at its arrival cycle, and runs exactly its planned windows.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from scheduler.domain import Plan, Policy
from scheduler.planning.cycle import plan_cycle
from scheduler.planning.snapshot import Occupancy
from scheduler.simulation.grid import epoch_s, from_epoch_s
from scheduler.simulation.job_traces import SimJob
from scheduler.simulation.scenario import Scenario, ScenarioView, planning_job

Progress = Callable[[int, int], None]
"""``(jobs finished, jobs total)``."""

_EPS_S = 1e-6


@dataclass(frozen=True, slots=True)
class Run:
    """One contiguous execution interval of a job, epoch seconds."""

    region: str
    start_s: float
    end_s: float


@dataclass(slots=True)
class JobRecord:
    """What happened to one job. ``runs`` is empty for a job that never ran."""

    job: SimJob
    runs: list[Run] = field(default_factory=list)
    late: bool = False  # the planner reported it could no longer meet its deadline
    # Starts refused because the plan would have put the region over its GPUs.
    capacity_holds: int = 0

    @property
    def finished(self) -> bool:
        done = sum(r.end_s - r.start_s for r in self.runs)
        return done >= self.job.duration_s - 1e-3


@dataclass(frozen=True, slots=True)
class PolicyRun:
    """Everything observed for one policy (or the offline optimum, labelled ``optimum``);
    ``cycles`` counts planner calls."""

    label: str
    records: tuple[JobRecord, ...]
    cycles: int


@dataclass(slots=True)
class _Live:
    record: JobRecord
    remaining_s: float
    plan: Plan | None = None
    running_until_s: float | None = None
    running_region: str | None = None
    # The plan was refused for capacity: re-planned at the next change, not at every step.
    held: bool = False


def simulate(
    scenario: Scenario,
    policy: Policy,
    *,
    every_cycle: bool = False,
    progress: Progress | None = None,
    batch_s: float | None = None,
) -> PolicyRun:
    """Replay ``scenario`` with every job on ``policy``. Pure apart from the planner's budget.

    ``batch_s`` (fast path only) plans the jobs arriving within ``batch_s`` of a batch's first
    arrival in one cycle at that arrival, each from its own arrival on; it gives the same plans
    as one cycle per arrival when the planner's choice for a job does not depend on ``now``:
    true when the error handed to it is the same at every lead and known in advance (the
    Gaussian and perfect models), as the tests check.
    """
    view = ScenarioView(scenario)
    if scenario.unlimited and scenario.static_forecasts and not every_cycle:
        return _simulate_independent(scenario, view, policy, progress, batch_s)
    return _Loop(scenario, view, policy, every_cycle, progress).run()


def _batches(scenario: Scenario, batch_s: float | None) -> dict[int, list[SimJob]]:
    grid, cycle = scenario.grid, scenario.cycle_steps
    batch_steps = max(int((batch_s or 0) // grid.step_s), 1)
    batches: dict[int, list[SimJob]] = {}
    opened = -batch_steps
    for job in sorted(scenario.jobs, key=lambda j: (j.arrival, j.id)):
        index = _cycle_at_or_after(grid.start_s, grid.step_s, cycle, epoch_s(job.arrival))
        if index >= opened + batch_steps:
            opened = index
        batches.setdefault(opened, []).append(job)
    return batches


def _simulate_independent(
    scenario: Scenario,
    view: ScenarioView,
    policy: Policy,
    progress: Progress | None,
    batch_s: float | None,
) -> PolicyRun:
    grid = scenario.grid
    batches = _batches(scenario, batch_s)
    by_id: dict[str, JobRecord] = {}
    for index, jobs in sorted(batches.items()):
        now_s = grid.time_s(index)
        planning = [
            planning_job(j, now_s=now_s, remaining_s=j.duration_s, policy=policy, current=None)
            for j in jobs
        ]
        decision = plan_cycle(view.snapshot(index, planning, (), policy))
        for job in jobs:
            plan = decision.plans.get(job.id)
            record = JobRecord(job=job, late=job.id in decision.late)
            if plan is not None:
                start_s = max(now_s, epoch_s(job.arrival))
                record.runs.extend(runs_following(plan, start_s, job.duration_s, grid.end_s))
            by_id[job.id] = record
        if progress is not None:
            progress(len(by_id), len(scenario.jobs))
    records = tuple(by_id[j.id] for j in scenario.jobs)
    return PolicyRun(label=policy.value, records=records, cycles=len(batches))


def runs_following(plan: Plan, now_s: float, duration_s: float, end_s: float) -> list[Run]:
    """Runs that follow the plan's windows until ``duration_s`` is done; the last window is
    stretched if the plan's windows fall short (they are on the planner's grid). Nothing runs
    past ``end_s`` (the grid's end)."""
    runs, left = [], duration_s
    for i, window in enumerate(plan.windows):
        start = max(epoch_s(window.start), now_s)
        length = window.duration_s if i < len(plan.windows) - 1 else left
        length = min(length, left, end_s - start)
        if length > 0:
            runs.append(Run(window.region, start, start + length))
            left -= length
    return runs


def _cycle_at_or_after(start_s: float, step_s: int, cycle_steps: int, when_s: float) -> int:
    steps = math.ceil((when_s - start_s) / step_s - 1e-9)
    return max(math.ceil(steps / cycle_steps) * cycle_steps, 0)


class _Loop:
    """The general event loop: capacity, re-planning, interruptible suspend/resume."""

    def __init__(
        self,
        scenario: Scenario,
        view: ScenarioView,
        policy: Policy,
        every_cycle: bool,
        progress: Progress | None,
    ) -> None:
        self.sc, self.view, self.policy = scenario, view, policy
        self.every_cycle, self.progress = every_cycle, progress
        grid = scenario.grid
        self.arrivals = sorted(scenario.jobs, key=lambda j: (j.arrival, j.id))
        self.next_arrival = 0
        self.live: dict[str, _Live] = {}
        self.done: list[JobRecord] = []
        self.cycles = 0
        self.issue_keys = {r.name: -1 for r in scenario.regions}
        self.start_s, self.step_s = grid.start_s, grid.step_s
        self.capacity = {r.name: r.gpus for r in scenario.regions}

    def run(self) -> PolicyRun:
        if not self.arrivals:
            return PolicyRun(label=self.policy.value, records=(), cycles=0)
        grid, cycle_steps = self.sc.grid, self.sc.cycle_steps
        index = self._step_index(epoch_s(self.arrivals[0].arrival))
        # A change seen between planning cycles waits for the next one, as in the service.
        pending = False
        while index < grid.n_steps:
            now_s = grid.time_s(index)
            pending |= self._finish_runs(now_s) | self._admit(now_s)
            pending |= self._forecasts_changed(index)
            if index % cycle_steps == 0:
                waiting = self._waiting()
                if waiting and (pending or self.every_cycle or self._unplanned(waiting)):
                    self._plan(index, now_s, waiting)
                pending = False
            self._dispatch(now_s)
            next_s = self._next_event_s(now_s, index, pending)
            if next_s is None:
                break
            index = max(self._step_index(next_s), index + 1)
        self.done.extend(s.record for s in self.live.values())
        order = {j.id: i for i, j in enumerate(self.sc.jobs)}
        records = tuple(sorted(self.done, key=lambda r: order[r.job.id]))
        return PolicyRun(label=self.policy.value, records=records, cycles=self.cycles)

    def _step_index(self, when_s: float) -> int:
        """The first grid step at or after ``when_s``: runs start and are noticed ending there
        (the service dispatches every few seconds, far more often than the grid step)."""
        return _cycle_at_or_after(self.start_s, self.step_s, 1, when_s)

    def _waiting(self) -> list[_Live]:
        return [s for s in self.live.values() if s.running_until_s is None]

    @staticmethod
    def _unplanned(waiting: list[_Live]) -> bool:
        return any(s.plan is None and not s.held for s in waiting)

    def _runnable(self, job: SimJob) -> bool:
        """Whether some allowed region has as many GPUs as ``job`` asks for."""
        limits = [self.capacity[r] for r in job.allowed_regions or (job.home_region,)]
        return any(limit is None or job.gpus <= limit for limit in limits)

    def _admit(self, now_s: float) -> bool:
        admitted = False
        while (
            self.next_arrival < len(self.arrivals)
            and epoch_s(self.arrivals[self.next_arrival].arrival) <= now_s + _EPS_S
        ):
            job = self.arrivals[self.next_arrival]
            self.next_arrival += 1
            if not self._runnable(job):
                self.done.append(JobRecord(job=job))
                continue
            self.live[job.id] = _Live(record=JobRecord(job=job), remaining_s=job.duration_s)
            admitted = True
        return admitted

    def _finish_runs(self, now_s: float) -> bool:
        ended = [
            s
            for s in self.live.values()
            if s.running_until_s is not None and s.running_until_s <= now_s + _EPS_S
        ]
        for state in ended:
            state.running_until_s, state.running_region = None, None
            if state.remaining_s <= 1e-3:
                self.done.append(self.live.pop(state.record.job.id).record)
        if ended and self.progress is not None:
            self.progress(len(self.done), len(self.sc.jobs))
        return bool(ended)

    def _forecasts_changed(self, index: int) -> bool:
        changed = False
        for name, model in self.sc.forecasts.items():
            key = model.issue_key(index)
            changed |= key != self.issue_keys[name]
            self.issue_keys[name] = key
        return changed

    def _plan(self, index: int, now_s: float, waiting: list[_Live]) -> None:
        jobs = [
            planning_job(
                s.record.job,
                now_s=now_s,
                remaining_s=s.remaining_s,
                policy=self.policy,
                current=s.plan,
            )
            for s in waiting
        ]
        occupancy = [
            Occupancy(
                region=s.running_region,
                gpus=s.record.job.gpus,
                start=from_epoch_s(s.record.runs[-1].start_s),
                end=from_epoch_s(s.running_until_s),
            )
            for s in self.live.values()
            if s.running_until_s is not None and s.running_region is not None
        ]
        decision = plan_cycle(self.view.snapshot(index, jobs, occupancy, self.policy))
        self.cycles += 1
        for state in waiting:
            job_id = state.record.job.id
            state.plan = decision.plans.get(job_id, state.plan)
            state.held = False
            state.record.late |= job_id in decision.late

    def _in_use(self) -> dict[str, int]:
        used: dict[str, int] = {}
        for s in self.live.values():
            if s.running_region is not None:
                used[s.running_region] = used.get(s.running_region, 0) + s.record.job.gpus
        return used

    def _dispatch(self, now_s: float) -> None:
        used = self._in_use()
        for state in self._waiting():
            plan = state.plan
            if plan is None or epoch_s(plan.start) > now_s + _EPS_S:
                continue
            window = plan.windows[0]
            limit = self.capacity[window.region]
            gpus = state.record.job.gpus
            if limit is not None and used.get(window.region, 0) + gpus > limit:
                # A plan that overcommits is not run: the job waits and is re-planned.
                state.record.capacity_holds += 1
                state.plan, state.held = None, True
                continue
            used[window.region] = used.get(window.region, 0) + gpus
            length = state.remaining_s
            if state.record.job.interruptible and len(plan.windows) > 1:
                length = min(length, (window.end - plan.start).total_seconds())
            length = max(length, 0.0) or state.remaining_s
            # A run past the carbon grid cannot be accounted: it stops there, unfinished.
            length = min(length, self.sc.grid.end_s - now_s)
            state.record.runs.append(Run(window.region, now_s, now_s + length))
            state.remaining_s -= length
            state.running_until_s, state.running_region = now_s + length, window.region
            # Once a window starts, the rest of the plan is re-made at its end.
            state.plan = _rest_of(plan) if state.remaining_s > 1e-3 else None

    def _next_event_s(self, now_s: float, index: int, pending: bool) -> float | None:
        """When something next happens: a run ends, a planned start comes, a job arrives, or a
        planning cycle is due (a change is pending, a job is unplaced, or ``every_cycle``)."""
        waiting = self._waiting()
        candidates = [
            s.running_until_s for s in self.live.values() if s.running_until_s is not None
        ]
        candidates += [epoch_s(s.plan.start) for s in waiting if s.plan is not None]
        if self.next_arrival < len(self.arrivals):
            candidates.append(epoch_s(self.arrivals[self.next_arrival].arrival))
        cycle_steps = self.sc.cycle_steps
        next_cycle_s = self.sc.grid.time_s((index // cycle_steps + 1) * cycle_steps)
        if waiting and (pending or self.every_cycle or self._unplanned(waiting)):
            candidates.append(next_cycle_s)
        if waiting:
            # A new forecast issue may change the plans of jobs still waiting.
            grid = self.sc.grid
            issues = [m.next_issue_index(index) for m in self.sc.forecasts.values()]
            candidates += [grid.time_s(i) for i in issues if i is not None]
        future = [c for c in candidates if c > now_s + _EPS_S]
        if not future and any(not s.held for s in waiting):
            future = [next_cycle_s]
        return min(future) if future else None


def _rest_of(plan: Plan) -> Plan | None:
    if len(plan.windows) < 2:
        return None
    rest = plan.windows[1:]
    return Plan(
        region=rest[0].region,
        windows=rest,
        policy=plan.policy,
        planned_at=plan.planned_at,
        forecast_emissions_g=plan.forecast_emissions_g,
        baseline_emissions_g=plan.baseline_emissions_g,
        forecast_issued_at=plan.forecast_issued_at,
        note=plan.note,
    )
