"""``run_simulation``: the use case behind ``greenlight simulate`` (files in, results out).

It reads a job trace and one carbon trace per region, places the jobs on the carbon traces'
common calendar, replays them once per policy through the planner, adds the offline optimum when
the instance is small enough, and writes ``simulation.csv`` and ``simulation.png``.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, replace
from multiprocessing.queues import Queue
from pathlib import Path
from queue import Empty

from scheduler.domain import Policy
from scheduler.simulation.engine import PolicyRun, simulate
from scheduler.simulation.grid import from_epoch_s
from scheduler.simulation.inputs import Inputs, SimulationOptions, Warn, read_inputs
from scheduler.simulation.metrics import PolicyMetrics, compare, measure
from scheduler.simulation.optimum import OPTIMUM_LABEL, optimum_run
from scheduler.simulation.results import SimulationResult, write_csv, write_plot
from scheduler.simulation.scenario import Scenario
from scheduler.simulation.trace_input import SimulationInputError

__all__ = [
    "SimulationOptions",
    "SimulationProgress",
    "SolverProgress",
    "SolverStatus",
    "optimum_nonzeros",
    "run_simulation",
]

SimulationProgress = Callable[[str, int, int], None]
"""``(label, jobs finished, jobs total)``: label is the policy being replayed."""

DEFAULT_POLICIES = tuple(Policy)
CSV_NAME = "simulation.csv"
PARALLEL_MIN_JOBS = 200
PNG_NAME = "simulation.png"


@dataclass(frozen=True, slots=True, kw_only=True)
class SolverStatus:
    """Where the optimum's exact solve stands: ``stage`` (``incumbent``, ``lp``, ``fixed``,
    ``mip``, ``done``), seconds since it began, the best placement's grams and the proven lower
    bound's (``inf``/``-inf`` while unknown)."""

    stage: str
    elapsed_s: float
    best_g: float
    bound_g: float

    @property
    def gap_pct(self) -> float | None:
        """(best - bound) / best x 100, once both are known."""
        if not (math.isfinite(self.best_g) and math.isfinite(self.bound_g)) or self.best_g <= 0:
            return None
        return max(self.best_g - self.bound_g, 0.0) / self.best_g * 100.0


SolverProgress = Callable[[SolverStatus], None]


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
    solver_progress: SolverProgress | None = None,
    warn: Warn | None = None,
) -> SimulationResult:
    """Replay ``jobs_path`` against ``carbon_paths`` (one per region) for each policy.

    ``regions`` names the regions (default: each trace's zone); ``capacity`` is GPUs per region
    (None: unlimited; ``options.cpu_capacity`` limits CPU cores instead); ``forecast_error`` is
    sigma of the Gaussian forecast error as a share of each trace's mean (0: perfect
    forecasts), unless ``options.forecast_paths`` gives a region real issued forecasts. ``now``
    is always included as the baseline. Jobs asking for more than the capacity are left out,
    with a note. ``progress`` hears ``(label, done, total)`` per policy, and ``optimum`` 0/1
    then 1/1 around an exact offline solve, whose stages ``solver_progress`` hears; ``warn``
    hears each warning as it is found (they are in the result too). Raises
    SimulationInputError for bad input (files, columns, options), before any replay starts
    (``out_dir`` is created first).
    """
    opts = options or SimulationOptions()
    chosen = _policies(policies)
    if out_dir is not None:
        try:
            Path(out_dir).mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise SimulationInputError(
                f"--out: cannot create the output folder ({e.strerror})", out_dir
            ) from e
    inputs = read_inputs(
        jobs_path,
        carbon_paths,
        regions=regions,
        capacity=capacity,
        forecast_error=forecast_error,
        seed=seed,
        opts=opts,
        warn=warn,
    )
    scenario = inputs.scenario
    notes = list(inputs.notes)
    runs = _replay(scenario, chosen, opts, progress)
    best = _optimum(scenario, runs, opts, notes, progress, solver_progress)
    if best is not None:
        runs.append(best)
    rows = tuple(compare([measure(scenario, run) for run in runs]))
    return _write(_result(inputs, rows, notes, forecast_error, seed), out_dir)


def _result(
    inputs: Inputs,
    rows: tuple[PolicyMetrics, ...],
    notes: list[str],
    forecast_error: float,
    seed: int,
) -> SimulationResult:
    grid = inputs.scenario.grid
    return SimulationResult(
        rows=rows,
        regions=inputs.regions,
        start=from_epoch_s(grid.start_s),
        end=from_epoch_s(grid.end_s),
        step_s=grid.step_s,
        forecast_error=forecast_error,
        seed=seed,
        jobs=len(inputs.scenario.jobs),
        dropped_jobs=inputs.dropped,
        notes=tuple(notes),
        cycle_s=inputs.scenario.cycle_steps * grid.step_s,
        resource=inputs.resource,
        traces=inputs.traces,
        warnings=inputs.warnings,
    )


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
    solver_progress: SolverProgress | None = None,
) -> PolicyRun | None:
    # Only an exact solve takes long enough to show; the unlimited optimum is the oracle's run.
    solves = not scenario.unlimited and len(scenario.jobs) <= opts.optimum_max_jobs
    if solves:
        size = optimum_nonzeros(scenario)
        if size > opts.optimum_max_nonzeros:
            notes.append(
                f"optimum skipped: its MIP would hold about {size / 1e6:.1f}M nonzeros "
                f"(limit {opts.optimum_max_nonzeros / 1e6:g}M, --optimum-max-nonzeros); long "
                "jobs weigh most"
            )
            return None
    if progress is not None and solves:
        progress(OPTIMUM_LABEL, 0, 1)
    started_s = time.monotonic()

    def stage(name: str, best_g: float, bound_g: float) -> None:
        if solver_progress is not None:
            elapsed_s = time.monotonic() - started_s
            solver_progress(
                SolverStatus(stage=name, elapsed_s=elapsed_s, best_g=best_g, bound_g=bound_g)
            )

    best = optimum_run(
        scenario,
        runs,
        max_jobs=opts.optimum_max_jobs,
        time_limit_s=opts.optimum_time_limit_s,
        notes=notes,
        progress=None if solver_progress is None else stage,
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


def _write(result: SimulationResult, out_dir: Path | None) -> SimulationResult:
    if out_dir is None:
        return result
    csv_path = write_csv(result.rows, Path(out_dir) / CSV_NAME)
    title = f"{result.jobs} jobs over {', '.join(result.regions)}"
    png_path = write_plot(result.rows, Path(out_dir) / PNG_NAME, title=title)
    return replace(result, csv_path=csv_path, png_path=png_path)
