"""``run_simulation``: the use case behind ``greenlight simulate`` (files in, results out).

It reads a job trace and one carbon trace per region, places the jobs on the carbon traces'
common calendar, replays them once per policy through the planner, adds the offline optimum when
the instance is small enough, and writes ``simulation.csv`` and ``simulation.png``.
"""

from __future__ import annotations

import math
import multiprocessing
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from multiprocessing.queues import Queue
from pathlib import Path
from queue import Empty

import numpy as np

from scheduler.domain import ConfigError, Forecast, Policy
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
    SimJob,
    read_job_trace,
    select_records,
    slack_deadline,
    to_sim_jobs,
)
from scheduler.simulation.metrics import compare, measure
from scheduler.simulation.optimum import OPTIMUM_LABEL, optimum_run
from scheduler.simulation.results import SimulationResult, write_csv, write_plot
from scheduler.simulation.scenario import Scenario, SimRegion

SimulationProgress = Callable[[str, int, int], None]
"""``(label, jobs finished, jobs total)``: label is the policy being replayed."""

DEFAULT_POLICIES = tuple(Policy)
CSV_NAME = "simulation.csv"
PARALLEL_MIN_JOBS = 200
PNG_NAME = "simulation.png"


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
    either the optimum row is left out, with a note).
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
    issued forecasts. ``now`` is always included as the baseline. Jobs asking for more GPUs than
    ``capacity`` are left out, with a note. ``progress`` hears ``(label, done, total)`` per
    policy, and ``optimum`` 0/1 then 1/1 around an exact offline solve. Raises JobTraceError or
    ConfigError for unreadable files and ValueError for inconsistent arguments, all before any
    replay starts (``out_dir`` is created first).
    """
    opts = options or SimulationOptions()
    chosen = _policies(policies)
    if out_dir is not None:
        try:
            Path(out_dir).mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ValueError(f"cannot create the output folder {out_dir}: {e.strerror}") from e
    series = [_carbon_trace(Path(p)) for p in carbon_paths]
    names = _region_names(regions, series)
    notes: list[str] = []
    scenario, dropped = _scenario(
        jobs_path,
        dict(zip(names, series, strict=True)),
        capacity,
        forecast_error,
        seed,
        opts,
        notes,
    )
    runs = _replay(scenario, chosen, opts, progress)
    best = _optimum(scenario, runs, opts, notes, progress)
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
        cycle_s=scenario.cycle_steps * grid.step_s,
    )
    return _write(result, out_dir)


def _carbon_trace(path: Path) -> Forecast:
    """The trace's actual series; every error names the file."""
    try:
        return load_carbon_trace(path)
    except ConfigError as e:
        message = str(e)
        raise ConfigError(message if str(path) in message else f"{path}: {message}") from e


def _region_names(regions: Sequence[str] | None, series: Sequence[Forecast]) -> tuple[str, ...]:
    """One distinct name per carbon trace; raises ValueError saying what does not match."""
    if regions and len(regions) != len(series):
        raise ValueError(
            f"{len(regions)} region name(s) for {len(series)} carbon trace(s): "
            "give one --region per --carbon, in the same order"
        )
    names = tuple(regions) if regions else tuple(s.zone for s in series)
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        flag = "--region" if regions else "zone (give --region names)"
        raise ValueError(f"each carbon trace needs its own region: {flag} {repeated[0]} repeats")
    return names


def optimum_nonzeros(scenario: Scenario) -> int:
    """About how many nonzeros the exact optimum's capacity matrix holds: each job has a
    candidate per start in its slack and per allowed region, covering its run's slots. Memory
    and time grow with it (about 1 GB and 10 s per 5M on two cores)."""
    step_s = scenario.grid.step_s
    total = 0
    for job in scenario.jobs:
        slack_s = (job.deadline - job.arrival).total_seconds() - job.duration_s
        regions = len(job.allowed_regions or (job.home_region,))
        total += (int(slack_s // step_s) + 1) * regions * math.ceil(job.duration_s / step_s)
    return total


def _optimum(
    scenario: Scenario,
    runs: list[PolicyRun],
    opts: SimulationOptions,
    notes: list[str],
    progress: SimulationProgress | None,
) -> PolicyRun | None:
    # Only an exact solve takes long enough to show; the unlimited optimum is the oracle's run.
    solves = not scenario.unlimited and len(scenario.jobs) <= opts.optimum_max_jobs
    if solves:
        size = optimum_nonzeros(scenario)
        if size > opts.optimum_max_nonzeros:
            notes.append(
                f"optimum skipped: its MIP would hold about {size / 1e6:.1f}M nonzeros "
                f"(limit {opts.optimum_max_nonzeros / 1e6:g}M); long jobs weigh most"
            )
            return None
    if progress is not None and solves:
        progress(OPTIMUM_LABEL, 0, 1)
    best = optimum_run(
        scenario,
        runs,
        max_jobs=opts.optimum_max_jobs,
        time_limit_s=opts.optimum_time_limit_s,
        notes=notes,
    )
    if progress is not None and solves:
        progress(OPTIMUM_LABEL, 1, 1)
    return best


def _policies(policies: Sequence[Policy | str] | None) -> list[Policy]:
    chosen = [Policy(p) for p in (policies or DEFAULT_POLICIES)]
    if Policy.NOW not in chosen:
        chosen.insert(0, Policy.NOW)
    return list(dict.fromkeys(chosen))


def _labelled(progress: SimulationProgress, label: str) -> Callable[[int, int], None]:
    def report(done: int, total: int) -> None:
        progress(label, done, total)

    return report


def _replay(
    scenario: Scenario,
    chosen: Sequence[Policy],
    opts: SimulationOptions,
    progress: SimulationProgress | None,
) -> list[PolicyRun]:
    """One run per policy, in ``chosen``'s order; in ``opts.workers`` processes at once when
    there are several (each replay is deterministic, so the runs are the same either way)."""
    report = progress or (lambda _label, _done, _total: None)
    total = len(scenario.jobs)
    for policy in chosen:
        report(policy.value, 0, total)
    workers = min(opts.workers or _default_workers(total), len(chosen))
    if workers <= 1:
        runs = []
        for policy in chosen:
            callback = _labelled(report, policy.value)
            runs.append(simulate(scenario, policy, every_cycle=opts.every_cycle, progress=callback))
            report(policy.value, total, total)  # jobs left unfinished are done with too
        return runs
    context = multiprocessing.get_context("spawn")  # no fork of a threaded parent
    queue: Queue[tuple[str, int, int]] = context.Queue()
    finished: set[str] = set()

    def relay(label: str, done: int, total: int) -> None:
        if label not in finished:  # a worker's last count may arrive after its result
            report(label, done, total)

    with ProcessPoolExecutor(
        workers, mp_context=context, initializer=_worker_start, initargs=(queue,)
    ) as pool:
        futures = {pool.submit(_worker_replay, scenario, p, opts.every_cycle): p for p in chosen}
        pending: set[Future[PolicyRun]] = set(futures)
        while pending:
            done, pending = wait(pending, timeout=_POLL_S)
            _drain(queue, relay)
            for future in done:
                relay(futures[future].value, total, total)
                finished.add(futures[future].value)
        return [f.result() for f in futures]


def _default_workers(jobs: int) -> int:
    # Starting a process costs about a second: not worth it for a small replay.
    return usable_cpus() if jobs >= PARALLEL_MIN_JOBS else 1


def usable_cpus() -> int:
    """CPUs this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


_POLL_S = 0.2
_worker_queue: Queue[tuple[str, int, int]] | None = None


def _worker_start(queue: Queue[tuple[str, int, int]]) -> None:
    global _worker_queue
    _worker_queue = queue


def _worker_replay(scenario: Scenario, policy: Policy, every_cycle: bool) -> PolicyRun:
    queue = _worker_queue

    def report(done: int, total: int) -> None:
        if queue is not None:
            queue.put((policy.value, done, total))

    return simulate(scenario, policy, every_cycle=every_cycle, progress=report)


def _drain(queue: Queue[tuple[str, int, int]], report: SimulationProgress) -> None:
    while True:
        try:
            label, done, total = queue.get_nowait()
        except Empty:
            return
        report(label, done, total)


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
    notes: list[str],
) -> tuple[Scenario, int]:
    step_s = _step_s(list(series.values()), opts.step_s)
    cycle_s = _cycle_s(step_s, opts.cycle_s)
    start, end = common_span(list(series.values()))
    start = from_epoch_s(float(np.ceil(epoch_s(start) / step_s) * step_s))
    jobs = _sim_jobs(jobs_path, tuple(series), start, step_s, seed, opts)
    kept = [j for j in jobs if j.deadline <= end - timedelta(seconds=step_s)]
    if not kept:
        raise ValueError(
            f"no job of {jobs_path} fits inside the carbon traces' common span "
            f"({start:%Y-%m-%d} to {end:%Y-%m-%d})"
        )
    if capacity is not None:
        wide = [j for j in kept if j.gpus > capacity]
        if wide:
            # They could never start: every policy would count them as misses alike.
            notes.append(f"{len(wide)} jobs ask for more than {capacity} GPUs: left out")
            kept = [j for j in kept if j.gpus <= capacity]
    if opts.max_jobs is not None:
        kept = kept[: opts.max_jobs]
    if not kept:
        raise ValueError(f"every job asks for more than --capacity {capacity} GPUs")
    # The grid runs to the traces' end, not the last deadline, so that jobs held up past their
    # deadlines still finish and every policy is accounted on the same work.
    grid = build_grid(series, start=start, end=end, step_s=step_s)
    forecasts = _forecast_models(grid, forecast_error, seed, opts.forecast_paths or {})
    regions = tuple(
        SimRegion(name=n, zone=series[n].zone, gpus=capacity, pue=opts.pue) for n in series
    )
    scenario = Scenario(
        jobs=tuple(kept),
        regions=regions,
        grid=grid,
        forecasts=forecasts,
        cycle_s=cycle_s,
        budget_s=opts.budget_s,
    )
    return scenario, len(jobs) - len(kept)


def _cycle_s(step_s: int, requested: int | None) -> int:
    """The planning interval; raises ValueError unless a positive multiple of the step."""
    if requested is None:
        return step_s
    if requested <= 0 or requested % step_s:
        raise ValueError(
            f"the planning interval ({requested} s) must be a multiple of the {step_s} s grid step"
        )
    return requested


def _sim_jobs(
    jobs_path: Path,
    regions: tuple[str, ...],
    start: datetime,
    step_s: int,
    seed: int,
    opts: SimulationOptions,
) -> list[SimJob]:
    trace = read_job_trace(jobs_path)
    records = select_records(trace, min_gpus=opts.min_gpus)
    if not records:
        raise ValueError(f"{jobs_path} holds no job to replay")
    return to_sim_jobs(
        records,
        start=start,
        regions=regions,
        deadline_rule=slack_deadline(opts.slack_s),
        power=opts.power,
        seed=seed,
        interruptible=opts.interruptible,
        align_s=step_s,
    )


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
