"""From files and options to a ``Scenario``: read the traces, choose and place the jobs, decide
which resource the capacity limits, and build the grid and the forecasts.

Everything the user could get wrong is refused here, before any replay, with a
``SimulationInputError`` that names the file or the option; what does not stop the run but may
surprise (a capacity option that cannot bind) is a warning.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from scheduler.domain import ConfigError, Forecast
from scheduler.forecasts.trace_files import load_forecast_trace
from scheduler.simulation.carbon_traces import CarbonReading, CarbonTrace, read_carbon_trace
from scheduler.simulation.forecasting import (
    ForecastModel,
    gaussian_forecast,
    issued_forecasts,
    perfect_forecast,
)
from scheduler.simulation.grid import CarbonGrid, build_grid, common_span, epoch_s, from_epoch_s
from scheduler.simulation.job_readers import JobTrace, TraceRecord, read_job_trace
from scheduler.simulation.job_traces import PowerModel, SimJob, slack_deadline, to_sim_jobs
from scheduler.simulation.placement import Selection, place
from scheduler.simulation.scenario import Scenario, SimRegion
from scheduler.simulation.trace_input import SimulationInputError

GPU = "GPU"
CPU = "CPU"


@dataclass(frozen=True, slots=True, kw_only=True)
class SimulationOptions:
    """Knobs beyond the CLI's main flags.

    ``step_s`` None picks 900 s when every trace's resolution divides into it, else the finest
    resolution. ``cycle_s`` is the planning interval, a multiple of the step (None: the step,
    the closest the grid allows to the service's few-second interval); arrivals and freed
    capacity wait for the next cycle, starts and ends do not. ``budget_s`` is the planner's
    improvement budget per cycle, in work units (the service's ``planning_budget_s``).
    ``workers`` is how many policies replay at once, each in its own process (None: one per
    usable CPU from ``PARALLEL_MIN_JOBS`` jobs, else one); the processes are spawned, so a
    script that asks for more than one must guard its entry point (``if __name__ ==
    "__main__"``).
    ``slack_s`` is each job's slack beyond its run time. ``optimum_max_jobs`` and
    ``optimum_max_nonzeros`` (see ``optimum_nonzeros``) bound the offline exact solve (above
    either the optimum row is left out, with a note); ``optimum_time_limit_s`` bounds its
    solve. ``job_columns`` maps a job trace's columns (None: detect the format), ``carbon``
    says how to read carbon traces, ``selection`` which jobs to replay and where, and
    ``cpu_capacity`` limits CPU cores per region (see ``capacity_resource``).
    """

    step_s: int | None = None
    slack_s: float = 24 * 3600.0
    max_jobs: int | None = None
    min_gpus: int = 0
    interruptible: bool = False
    pue: float = 1.0
    power: PowerModel = field(default_factory=PowerModel)
    forecast_paths: Mapping[str, Path] | None = None
    optimum_max_jobs: int = 400
    optimum_max_nonzeros: int = 5_000_000
    optimum_time_limit_s: float = 60.0
    every_cycle: bool = False
    cycle_s: int | None = None
    budget_s: float = 0.3
    workers: int | None = 1
    job_columns: Mapping[str, str] | None = None
    carbon: CarbonReading = field(default_factory=CarbonReading)
    selection: Selection = field(default_factory=Selection)
    cpu_capacity: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TraceInfo:
    """A trace as the run's header shows it: file, detected format, what was read."""

    role: str
    path: str
    format: str
    detail: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Inputs:
    """The scenario and what the output says about how it was made. ``resource`` is what the
    capacity counts (``GPU`` or ``CPU`` cores); ``dropped`` counts trace jobs left out."""

    scenario: Scenario
    regions: tuple[str, ...]
    dropped: int
    resource: str
    traces: tuple[TraceInfo, ...]
    notes: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


Warn = Callable[[str], None]


def read_inputs(
    jobs_path: Path,
    carbon_paths: Sequence[Path],
    *,
    regions: Sequence[str] | None,
    capacity: int | None,
    forecast_error: float,
    seed: int,
    opts: SimulationOptions,
    warn: Warn | None = None,
) -> Inputs:
    """Everything ``run_simulation`` replays; raises SimulationInputError for bad input."""
    carbon = [read_carbon_trace(Path(p), opts.carbon) for p in carbon_paths]
    names = region_names(regions, [c.series for c in carbon])
    series = dict(zip(names, (c.series for c in carbon), strict=True))
    trace = read_job_trace(jobs_path, opts.job_columns)
    warnings: list[str] = []

    def warned(message: str) -> None:
        warnings.append(message)
        if warn is not None:
            warn(message)

    resource, limit = capacity_resource(
        trace.records, capacity, opts.cpu_capacity, str(jobs_path), warned
    )
    step_s = _step_s(list(series.values()), opts.step_s)
    cycle_s = _cycle_s(step_s, opts.cycle_s)
    start, end = _span(carbon, names)
    start = from_epoch_s(float(np.ceil(epoch_s(start) / step_s) * step_s))
    placed = place(
        trace,
        opts.selection,
        path=str(jobs_path),
        span=(start, end),
        step_s=step_s,
        min_gpus=opts.min_gpus,
    )
    notes = list(placed.statements)
    jobs = _sim_jobs(placed.records, names, placed.start, step_s, seed, opts, resource)
    kept = [j for j in jobs if j.deadline <= end - timedelta(seconds=step_s)]
    if not kept:
        raise SimulationInputError(
            f"no job fits inside the carbon traces' common span ({start:%Y-%m-%d} to "
            f"{end:%Y-%m-%d}) with its deadline (arrival + run time + --slack-s)",
            jobs_path,
        )
    if limit is not None:
        wide = [j for j in kept if j.gpus > limit]
        if wide:
            # They could never start: every policy would count them as misses alike.
            unit = "GPUs" if resource == GPU else "CPU cores"
            notes.append(f"{len(wide)} jobs ask for more than {limit} {unit}: left out")
            kept = [j for j in kept if j.gpus <= limit]
    if opts.max_jobs is not None:
        kept = kept[: opts.max_jobs]
    if not kept:
        option = "--capacity" if resource == GPU else "--cpu-capacity"
        raise SimulationInputError(f"every job asks for more than {option} {limit}", jobs_path)
    # The grid runs to the traces' end, not the last deadline, so that jobs held up past their
    # deadlines still finish and every policy is accounted on the same work.
    grid = build_grid(series, start=start, end=end, step_s=step_s)
    forecasts = _forecast_models(grid, forecast_error, seed, opts.forecast_paths or {})
    scenario = Scenario(
        jobs=tuple(kept),
        regions=tuple(
            SimRegion(name=n, zone=series[n].zone, gpus=limit, pue=opts.pue) for n in series
        ),
        grid=grid,
        forecasts=forecasts,
        cycle_s=cycle_s,
        budget_s=opts.budget_s,
    )
    return Inputs(
        scenario=scenario,
        regions=names,
        dropped=len(jobs) - len(kept),
        resource=resource,
        traces=(
            _job_info(jobs_path, trace),
            *(_carbon_info(n, c) for n, c in zip(names, carbon, strict=True)),
        ),
        notes=tuple(notes),
        warnings=tuple(warnings),
    )


def capacity_resource(
    records: Sequence[TraceRecord],
    gpus: int | None,
    cpus: int | None,
    path: str,
    warn: Warn,
) -> tuple[str, int | None]:
    """Which resource the capacity counts and its limit per region (None: unlimited).

    A capacity option on a resource no job asks for does not bind: it is dropped with a
    warning. The planner models one resource per region, so both options binding at once is
    refused (SimulationInputError).
    """
    has_gpus = any(r.gpus > 0 for r in records)
    has_cpus = any(r.cpus > 0 for r in records)
    if gpus is not None and not has_gpus:
        hint = "; --cpu-capacity limits CPU cores" if has_cpus and cpus is None else ""
        warn(f"--capacity {gpus} does not bind: no job in {path} asks for a GPU{hint}")
        gpus = None
    if cpus is not None and not has_cpus:
        warn(f"--cpu-capacity {cpus} does not bind: no job in {path} asks for a CPU")
        cpus = None
    if gpus is not None and cpus is not None:
        raise SimulationInputError(
            f"--capacity and --cpu-capacity cannot both bind: jobs in {path} ask for GPUs and "
            "CPUs, and the planner models one resource per region; give one of them"
        )
    return (CPU, cpus) if cpus is not None else (GPU, gpus)


def region_names(regions: Sequence[str] | None, series: Sequence[Forecast]) -> tuple[str, ...]:
    """One distinct name per carbon trace; raises SimulationInputError saying what does not
    match."""
    if regions and len(regions) != len(series):
        raise SimulationInputError(
            f"{len(regions)} region name(s) for {len(series)} carbon trace(s): "
            "give one --region per --carbon, in the same order"
        )
    names = tuple(regions) if regions else tuple(s.zone for s in series)
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        flag = "--region" if regions else "zone (give --region names)"
        raise SimulationInputError(
            f"each carbon trace needs its own region: {flag} {repeated[0]} repeats"
        )
    return names


def _span(carbon: Sequence[CarbonTrace], names: Sequence[str]) -> tuple[datetime, datetime]:
    try:
        return common_span([c.series for c in carbon])
    except ValueError as e:
        ranges = "; ".join(
            f"{n} {c.path}: {c.series.start:%Y-%m-%d %H:%M} to {c.series.end:%Y-%m-%d %H:%M}"
            for n, c in zip(names, carbon, strict=True)
        )
        raise SimulationInputError(
            f"the carbon traces do not overlap in time ({ranges}): expected one common span"
        ) from e


def _step_s(series: Sequence[Forecast], requested: int | None) -> int:
    if requested is not None:
        return requested
    resolutions = [s.resolution_s for s in series]
    return 900 if all(900 % r == 0 or r % 900 == 0 for r in resolutions) else min(resolutions)


def _cycle_s(step_s: int, requested: int | None) -> int:
    """The planning interval; raises SimulationInputError unless a multiple of the step."""
    if requested is None:
        return step_s
    if requested <= 0 or requested % step_s:
        raise SimulationInputError(
            f"--cycle-s: the planning interval ({requested} s) must be a multiple of the "
            f"{step_s} s grid step"
        )
    return requested


def _sim_jobs(
    records: Sequence[TraceRecord],
    regions: Sequence[str],
    start: datetime,
    step_s: int,
    seed: int,
    opts: SimulationOptions,
    resource: str,
) -> list[SimJob]:
    jobs = to_sim_jobs(
        records,
        start=start,
        regions=regions,
        deadline_rule=slack_deadline(opts.slack_s),
        power=opts.power,
        seed=seed,
        interruptible=opts.interruptible,
        align_s=step_s,
    )
    if resource == GPU:
        return jobs
    # The planner counts one resource per job (``gpus``): here whole CPU cores, a fraction
    # holding one. Power stays what the job's GPUs and CPUs draw.
    return [replace(job, gpus=math.ceil(r.cpus)) for job, r in zip(jobs, records, strict=True)]


def _forecast_models(
    grid: CarbonGrid,
    forecast_error: float,
    seed: int,
    files: Mapping[str, Path],
) -> dict[str, ForecastModel]:
    models: dict[str, ForecastModel] = {}
    for i, (name, actual) in enumerate(grid.actuals.items()):
        if name in files:
            try:
                issued = load_forecast_trace(files[name])
            except ConfigError as e:
                raise SimulationInputError(str(e), files[name]) from e
            models[name] = issued_forecasts(actual, issued, grid.start_s, grid.step_s)
        elif forecast_error > 0:
            # Region 0 draws exactly what Let's Wait Awhile's default_rng(seed) draws.
            rng = np.random.default_rng(seed if i == 0 else [seed, i])
            models[name] = gaussian_forecast(actual, forecast_error, rng)
        else:
            models[name] = perfect_forecast(actual)
    return models


def _job_info(path: Path, trace: JobTrace) -> TraceInfo:
    detail = f"{len(trace.records):,} jobs read"
    if trace.skipped:
        reasons = ", ".join(f"{reason} {n:,}" for reason, n in trace.skipped)
        rows = trace.skipped_rows
        detail += f", {rows:,} row{'' if rows == 1 else 's'} skipped ({reasons})"
    return TraceInfo(role="jobs", path=str(path), format=trace.format.value, detail=detail)


def _carbon_info(region: str, trace: CarbonTrace) -> TraceInfo:
    series = trace.series
    detail = (
        f"{region}, {trace.unit}, {series.resolution_s // 60} min steps, "
        f"{series.start:%Y-%m-%d %H:%M} to {series.end:%Y-%m-%d %H:%M}"
    )
    return TraceInfo(role="carbon", path=str(trace.path), format=trace.format.value, detail=detail)
