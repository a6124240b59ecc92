"""``run_simulation``: the use case behind ``greenlight simulate`` (files in, results out).

It reads a job trace and one carbon trace per region, places the jobs on the carbon traces'
common calendar, replays them once per policy through the planner, adds the offline optimum when
the instance is small enough, and writes ``simulation.csv`` and ``simulation.png``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path

import numpy as np

from scheduler.domain import Forecast, Policy
from scheduler.forecasts.trace_files import load_carbon_trace, load_forecast_trace
from scheduler.simulation.engine import PolicyRun, simulate
from scheduler.simulation.forecasting import (
    ForecastModel,
    gaussian_forecast,
    issued_forecasts,
    perfect_forecast,
)
from scheduler.simulation.grid import (
    CarbonGrid,
    build_grid,
    common_span,
    epoch_s,
    from_epoch_s,
)
from scheduler.simulation.job_traces import (
    PowerModel,
    read_job_trace,
    select_records,
    slack_deadline,
    to_sim_jobs,
)
from scheduler.simulation.metrics import compare, measure
from scheduler.simulation.optimum import optimum_run
from scheduler.simulation.results import SimulationResult, write_csv, write_plot
from scheduler.simulation.scenario import Scenario, SimRegion

SimulationProgress = Callable[[str, int, int], None]
"""``(label, jobs finished, jobs total)``: label is the policy being replayed."""

DEFAULT_POLICIES = tuple(Policy)
CSV_NAME = "simulation.csv"
PNG_NAME = "simulation.png"


@dataclass(frozen=True, slots=True, kw_only=True)
class SimulationOptions:
    """Knobs beyond the CLI's main flags.

    ``step_s`` None picks 900 s when every trace's resolution divides into it, else the finest
    resolution. ``slack_s`` is each job's slack beyond its run time. ``optimum_max_jobs`` bounds
    the offline exact solve (above it the optimum row is left out, with a note).
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
    optimum_time_limit_s: float = 60.0
    every_cycle: bool = False


def run_simulation(
    jobs_path: Path,
    carbon_paths: Sequence[Path],
    regions: Sequence[str] | None = None,
    policies: Sequence[Policy | str] | None = None,
    capacity: int | None = None,
    forecast_error: float = 0.05,
    seed: int = 0,
    out_dir: Path | None = None,
    progress: SimulationProgress | None = None,
    options: SimulationOptions | None = None,
) -> SimulationResult:
    """Replay ``jobs_path`` against ``carbon_paths`` (one per region) for each policy.

    ``regions`` names the regions (default: each trace's zone); ``capacity`` is GPUs per region
    (None: unlimited); ``forecast_error`` is sigma of the Gaussian forecast error as a share of each
    trace's mean (0: perfect forecasts), unless ``options.forecast_paths`` gives a region real
    issued forecasts. ``now`` is always included as the baseline. Raises JobTraceError or
    ConfigError for unreadable files and ValueError for inconsistent arguments.
    """
    opts = options or SimulationOptions()
    chosen = _policies(policies)
    series = [load_carbon_trace(Path(p)) for p in carbon_paths]
    names = tuple(regions) if regions else tuple(s.zone for s in series)
    if len(names) != len(series) or len(set(names)) != len(names):
        raise ValueError("give one distinct region name per carbon trace")
    scenario, dropped = _scenario(
        jobs_path, dict(zip(names, series, strict=True)), capacity, forecast_error, seed, opts
    )
    runs: list[PolicyRun] = []
    for policy in chosen:
        callback = None if progress is None else _labelled(progress, policy.value)
        runs.append(simulate(scenario, policy, every_cycle=opts.every_cycle, progress=callback))
    notes: list[str] = []
    best = optimum_run(
        scenario,
        runs,
        max_jobs=opts.optimum_max_jobs,
        time_limit_s=opts.optimum_time_limit_s,
        notes=notes,
    )
    if best is not None:
        runs.append(best)
    rows = tuple(compare([measure(scenario, run) for run in runs]))
    grid = scenario.grid
    result = SimulationResult(
        rows=rows,
        regions=names,
        start=from_epoch_s(grid.start_s),
        end=from_epoch_s(grid.end_s),
        step_s=grid.step_s,
        forecast_error=forecast_error,
        seed=seed,
        jobs=len(scenario.jobs),
        dropped_jobs=dropped,
        notes=tuple(notes),
    )
    return _write(result, out_dir)


def _policies(policies: Sequence[Policy | str] | None) -> list[Policy]:
    chosen = [Policy(p) for p in (policies or DEFAULT_POLICIES)]
    if Policy.NOW not in chosen:
        chosen.insert(0, Policy.NOW)
    return list(dict.fromkeys(chosen))


def _labelled(progress: SimulationProgress, label: str) -> Callable[[int, int], None]:
    def report(done: int, total: int) -> None:
        progress(label, done, total)

    return report


def _step_s(series: Sequence[Forecast], requested: int | None) -> int:
    if requested is not None:
        return requested
    resolutions = [s.resolution_s for s in series]
    return 900 if all(900 % r == 0 or r % 900 == 0 for r in resolutions) else min(resolutions)


def _scenario(
    jobs_path: Path,
    series: Mapping[str, Forecast],
    capacity: int | None,
    forecast_error: float,
    seed: int,
    opts: SimulationOptions,
) -> tuple[Scenario, int]:
    step_s = _step_s(list(series.values()), opts.step_s)
    start, end = common_span(list(series.values()))
    start_s = np.ceil(epoch_s(start) / step_s) * step_s
    names = tuple(series)
    trace = read_job_trace(jobs_path)
    records = select_records(trace, min_gpus=opts.min_gpus)
    jobs = to_sim_jobs(
        records,
        start=from_epoch_s(float(start_s)),
        regions=names,
        deadline_rule=slack_deadline(opts.slack_s),
        power=opts.power,
        seed=seed,
        interruptible=opts.interruptible,
        align_s=step_s,
    )
    kept = [j for j in jobs if j.deadline <= end - timedelta(seconds=step_s)]
    if opts.max_jobs is not None:
        kept = kept[: opts.max_jobs]
    if not kept:
        raise ValueError("no job of the trace fits inside the carbon traces' span")
    grid_end = max(j.deadline for j in kept) + timedelta(seconds=step_s)
    grid = build_grid(
        series, start=from_epoch_s(float(start_s)), end=min(grid_end, end), step_s=step_s
    )
    forecasts = _forecast_models(grid, forecast_error, seed, opts.forecast_paths or {})
    regions = tuple(
        SimRegion(name=n, zone=series[n].zone, gpus=capacity, pue=opts.pue) for n in names
    )
    scenario = Scenario(jobs=tuple(kept), regions=regions, grid=grid, forecasts=forecasts)
    return scenario, len(jobs) - len(kept)


def _forecast_models(
    grid: CarbonGrid,
    forecast_error: float,
    seed: int,
    files: Mapping[str, Path],
) -> dict[str, ForecastModel]:
    models: dict[str, ForecastModel] = {}
    for i, (name, actual) in enumerate(grid.actuals.items()):
        if name in files:
            models[name] = issued_forecasts(
                actual, load_forecast_trace(files[name]), grid.start_s, grid.step_s
            )
        elif forecast_error > 0:
            # Region 0 draws exactly what Let's Wait Awhile's default_rng(seed) draws.
            rng = np.random.default_rng(seed if i == 0 else [seed, i])
            models[name] = gaussian_forecast(actual, forecast_error, rng)
        else:
            models[name] = perfect_forecast(actual)
    return models


def _write(result: SimulationResult, out_dir: Path | None) -> SimulationResult:
    if out_dir is None:
        return result
    csv_path = write_csv(result.rows, Path(out_dir) / CSV_NAME)
    title = f"{result.jobs} jobs over {', '.join(result.regions)}"
    png_path = write_plot(result.rows, Path(out_dir) / PNG_NAME, title=title)
    return replace(result, csv_path=csv_path, png_path=png_path)
