"""A simulation scenario: jobs, regions with capacity, actual intensity and forecasts on one grid.

``ScenarioView`` turns the scenario's state at a cycle into the planner's ``Snapshot``; it caches
each region's points once so a cycle only slices tuples.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

import numpy as np

from scheduler.domain import Forecast, IntensityPoint, JobKind, Plan, Policy, SeriesKind
from scheduler.planning.snapshot import Occupancy, PlanningJob, RegionState, Snapshot
from scheduler.simulation.forecasting import ForecastModel
from scheduler.simulation.grid import CarbonGrid, from_epoch_s
from scheduler.simulation.job_traces import SimJob

SIMULATION_PROVIDER = "simulation"


@dataclass(frozen=True, slots=True, kw_only=True)
class SimRegion:
    """A region in the simulation. ``gpus`` None means unlimited capacity."""

    name: str
    zone: str
    gpus: int | None = None
    pue: float = 1.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Scenario:
    """Everything one simulated run needs, whatever the policy.

    ``cycle_s`` is the planning interval (a multiple of the grid step; default the step).
    ``horizon_s`` caps how far ahead forecasts reach (None: to the latest pending deadline).
    ``budget_s`` is the planner's improvement budget per cycle.
    """

    jobs: tuple[SimJob, ...]
    regions: tuple[SimRegion, ...]
    grid: CarbonGrid
    forecasts: Mapping[str, ForecastModel]
    cycle_s: int | None = None
    horizon_s: float | None = None
    budget_s: float = 0.3

    def __post_init__(self) -> None:
        names = {r.name for r in self.regions}
        if names != set(self.grid.actuals) or names != set(self.forecasts):
            raise ValueError("regions, actuals and forecasts must name the same regions")
        if self.cycle_s is not None and self.cycle_s % self.grid.step_s:
            raise ValueError("cycle_s must be a multiple of the grid step")
        for job in self.jobs:
            unknown = {job.home_region, *job.allowed_regions} - names
            if unknown:
                raise ValueError(f"job {job.id} names unknown regions {sorted(unknown)}")

    @property
    def cycle_steps(self) -> int:
        return (self.cycle_s or self.grid.step_s) // self.grid.step_s

    @property
    def unlimited(self) -> bool:
        return all(r.gpus is None for r in self.regions)

    @property
    def static_forecasts(self) -> bool:
        return all(model.static for model in self.forecasts.values())

    def region(self, name: str) -> SimRegion:
        return next(r for r in self.regions if r.name == name)


@dataclass(slots=True)
class ScenarioView:
    """Builds snapshots for one scenario. Point tuples are built once and sliced per cycle."""

    scenario: Scenario
    _actual_points: dict[str, tuple[IntensityPoint, ...]] = field(default_factory=dict)
    _static_points: dict[str, tuple[IntensityPoint, ...]] = field(default_factory=dict)
    _unlimited_gpus: int = 0

    def __post_init__(self) -> None:
        grid = self.scenario.grid
        for name, actual in grid.actuals.items():
            self._actual_points[name] = _points(actual, grid.start_s, grid.step_s, 0)
            model = self.scenario.forecasts[name]
            if model.static:
                _, values = model.window(0, grid.n_steps)
                self._static_points[name] = _points(values, grid.start_s, grid.step_s, 0)
        self._unlimited_gpus = max(sum(j.gpus for j in self.scenario.jobs), 1)

    def snapshot(
        self,
        now_index: int,
        jobs: Sequence[PlanningJob],
        occupancy: Sequence[Occupancy],
        policy: Policy,
    ) -> Snapshot:
        """The planner's view at grid step ``now_index`` (oracle runs also get actuals)."""
        sc, grid = self.scenario, self.scenario.grid
        end_index = self._horizon_end(now_index, jobs)
        forecasts, errors, actuals = {}, {}, {}
        for region in sc.regions:
            forecast = self._forecast(region, now_index, end_index)
            if forecast is not None:
                forecasts[region.name] = forecast
            errors[region.name] = sc.forecasts[region.name].lead_errors(now_index)
            if policy is Policy.ORACLE:
                actuals[region.name] = self._series(
                    region.zone,
                    self._actual_points[region.name][now_index:end_index],
                    now_index,
                    SeriesKind.ACTUAL,
                )
        states = tuple(
            RegionState(
                name=r.name, pue=r.pue, gpus=self._unlimited_gpus if r.gpus is None else r.gpus
            )
            for r in sc.regions
        )
        return Snapshot(
            now=from_epoch_s(grid.time_s(now_index)),
            jobs=tuple(jobs),
            regions=states,
            forecasts=forecasts,
            occupancy=tuple(occupancy),
            forecast_error=errors,
            actuals=actuals,
            step_s=grid.step_s,
            budget_s=sc.budget_s,
        )

    def _horizon_end(self, now_index: int, jobs: Sequence[PlanningJob]) -> int:
        grid = self.scenario.grid
        now_s = grid.time_s(now_index)
        latest = max((j.deadline for j in jobs if j.deadline is not None), default=None)
        end_s = grid.end_s if latest is None else latest.timestamp()
        # A job past its deadline still runs as early as GPUs allow: the forecast must reach it.
        longest_s = max((j.duration_s for j in jobs), default=0.0)
        end_s = max(end_s, now_s + longest_s + grid.step_s)
        if self.scenario.horizon_s is not None:
            end_s = min(end_s, now_s + self.scenario.horizon_s)
        return min(int(np.ceil((end_s - grid.start_s) / grid.step_s)), grid.n_steps)

    def _forecast(self, region: SimRegion, now_index: int, end_index: int) -> Forecast | None:
        model = self.scenario.forecasts[region.name]
        if model.static:
            points = self._static_points[region.name][now_index:end_index]
            return self._series(region.zone, points, now_index, SeriesKind.FORECAST)
        first, values = model.window(now_index, end_index)
        if not len(values):
            return None
        grid = self.scenario.grid
        points = _points(values, grid.time_s(first), grid.step_s, 0)
        return self._series(region.zone, points, model.issued_index(now_index), SeriesKind.FORECAST)

    def _series(
        self,
        zone: str,
        points: tuple[IntensityPoint, ...],
        issued_index: int,
        kind: SeriesKind,
    ) -> Forecast:
        grid = self.scenario.grid
        return Forecast(
            zone=zone,
            provider=SIMULATION_PROVIDER,
            kind=kind,
            issued_at=from_epoch_s(grid.time_s(issued_index)),
            resolution_s=grid.step_s,
            points=points,
        )


def _points(
    values: np.ndarray,
    start_s: float,
    step_s: int,
    offset: int,
) -> tuple[IntensityPoint, ...]:
    start = from_epoch_s(start_s)
    step = timedelta(seconds=step_s)
    return tuple(
        IntensityPoint(valid_at=start + (i + offset) * step, g_per_kwh=v)
        for i, v in enumerate(values.tolist())
    )


def planning_job(
    job: SimJob,
    *,
    now_s: float,
    remaining_s: float,
    policy: Policy,
    current: Plan | None,
) -> PlanningJob:
    """The planner's view of a job that has arrived and still has ``remaining_s`` to run."""
    return PlanningJob(
        id=job.id,
        kind=JobKind.TRAINING,
        gpus=job.gpus,
        power_w=job.power_w,
        duration_s=remaining_s,
        submitted_at=job.arrival,
        earliest_start=max(from_epoch_s(now_s), job.arrival),
        deadline=job.deadline,
        home_region=job.home_region,
        allowed_regions=job.allowed_regions or (job.home_region,),
        policy=policy,
        interruptible=job.interruptible,
        current_plan=current,
    )
