"""Reproduce Let's Wait Awhile's ML-training scenario (Wiesner et al., Middleware'21) and print
our savings over run-now beside the published ones.

Scenario, as in the paper's ``simulate.py``: 3,387 jobs on the workdays of 2020
(``default_rng(0)``; a multinomial draw spreads them over the workdays; arrivals among
09:00-16:30 in 30-minute steps, sorted per day; durations uniform over 4 h to 89.5 h in 30-minute
steps, drawn after the arrivals); deadline "next workday"; constant power; 30-minute steps (the
trace values at :00 and :30, as the paper filters them, so GB's 15-minute part and DE's
15-minute data are sampled alike); forecast = actual + N(0, 5% of the trace mean), one draw per
step, seeds 0-9; savings over run-now, averaged over the seeds.

Every policy plans through the service's own ``plan_cycle``. Without capacity limits and with a
forecast that does not change with its issue time, jobs are independent and a plan never
changes once made, so each job is planned once (jobs arriving on one day in one cycle, see
``--batch-days``).

Run: ``.venv/bin/python bench/anchors.py [--seeds 10] [--regions DE GB FR]
[--modes non-interruptible interruptible] [--jobs 3387] [--batch-days 1]``.
"""

from __future__ import annotations

import argparse
import functools
import math
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from scheduler.domain import Policy
from scheduler.forecasts.trace_files import load_carbon_trace
from scheduler.simulation.engine import simulate
from scheduler.simulation.forecasting import gaussian_forecast, perfect_forecast
from scheduler.simulation.grid import CarbonGrid, Resample, build_grid
from scheduler.simulation.job_traces import SimJob, next_workday_deadline
from scheduler.simulation.metrics import job_emissions_g
from scheduler.simulation.scenario import Scenario, SimRegion

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "carbon" / "lets-wait-awhile"
FILES = {"DE": "ger_ci.csv", "GB": "gb_ci.csv", "FR": "fr_ci.csv"}
# Published savings over run-now with 5% forecast error: (non-interruptible, interruptible) %.
PUBLISHED = {"DE": (5.91, 7.93), "GB": (6.56, 9.03), "FR": (4.77, 5.92)}
STEP_S = 1800
POWER_W = 1000.0
YEAR_START = datetime(2020, 1, 1, tzinfo=UTC)
COMPARED = (Policy.WAIT_AWHILE, Policy.GREENLIGHT)


def lwa_ml_jobs(n: int = 3387, *, interruptible: bool = False) -> list[SimJob]:
    """The paper's ML jobs, drawn with the same calls in the same order as its generator."""
    rng = np.random.default_rng(0)
    durations_min = np.arange(4 * 60, 90 * 60, 30)
    start_minutes = np.arange(9 * 60, 17 * 60, 30)
    days = [YEAR_START + timedelta(days=i) for i in range(366)]
    workdays = [d for d in days if d.weekday() <= 4]
    per_day = dict(
        zip(workdays, rng.multinomial(n, [1 / len(workdays)] * len(workdays)), strict=True)
    )
    arrivals = []
    for day in days:
        count = int(per_day.get(day, 0))
        for minute in np.sort(rng.choice(start_minutes, size=count)):
            arrivals.append(day + timedelta(minutes=int(minute)))
    durations = rng.choice(durations_min, size=n)
    jobs = []
    for i, (arrival, minutes) in enumerate(zip(arrivals, durations, strict=True)):
        duration_s = float(minutes) * 60.0
        jobs.append(
            SimJob(
                id=f"ml-{i}",
                arrival=arrival,
                duration_s=duration_s,
                gpus=1,
                power_w=POWER_W,
                deadline=next_workday_deadline(arrival, duration_s),
                home_region="dc",
                allowed_regions=("dc",),
                interruptible=interruptible,
            )
        )
    return jobs


@functools.cache
def load_grid(zone: str) -> CarbonGrid:
    """2020-01-01 to the trace's end at 30-minute steps, sampled as the paper does."""
    series = load_carbon_trace(DATA / FILES[zone])
    assert series.end is not None
    # Every :00 and :30 value up to the trace's last one, as the paper's series has.
    n_steps = math.ceil((series.end - YEAR_START).total_seconds() / STEP_S)
    return build_grid(
        {"dc": series},
        start=YEAR_START,
        end=YEAR_START + timedelta(seconds=n_steps * STEP_S),
        step_s=STEP_S,
        how=Resample.SAMPLE,
    )


@dataclass(frozen=True, slots=True)
class Task:
    zone: str
    policy: Policy
    interruptible: bool
    seed: int | None  # None: perfect forecast
    jobs: int
    batch_days: float


def run_task(task: Task) -> tuple[Task, float, int]:
    """Total grams on actuals for one (zone, policy, mode, seed), and the cycles it took."""
    grid = load_grid(task.zone)
    actual = grid.actuals["dc"]
    model = (
        perfect_forecast(actual)
        if task.seed is None
        else gaussian_forecast(actual, 0.05, np.random.default_rng(task.seed))
    )
    jobs = lwa_ml_jobs(task.jobs, interruptible=task.interruptible)
    scenario = Scenario(
        jobs=tuple(jobs),
        regions=(SimRegion(name="dc", zone=task.zone),),
        grid=grid,
        forecasts={"dc": model},
    )
    run = simulate(scenario, task.policy, batch_s=task.batch_days * 86400.0 or None)
    return task, float(job_emissions_g(scenario, run.records).sum()), run.cycles


MODES = {"non-interruptible": False, "interruptible": True}


def tasks(
    zones: list[str], modes: list[bool], seeds: int, n_jobs: int, batch_days: float
) -> list[Task]:
    out = []
    for zone in zones:
        out.append(Task(zone, Policy.NOW, False, None, n_jobs, batch_days))
        for interruptible in modes:
            out.append(Task(zone, Policy.ORACLE, interruptible, None, n_jobs, batch_days))
            out += [
                Task(zone, policy, interruptible, seed, n_jobs, batch_days)
                for policy in COMPARED
                for seed in range(seeds)
            ]
    return out


def _saving_pct(
    results: list[tuple[Task, float, int]],
    zone: str,
    policy: Policy,
    interruptible: bool,
) -> float:
    base = next(g for t, g, _ in results if t.zone == zone and t.policy is Policy.NOW)
    grams = [
        g
        for t, g, _ in results
        if t.zone == zone and t.policy is policy and t.interruptible == interruptible
    ]
    return (base - float(np.mean(grams))) / base * 100.0


def report(results: list[tuple[Task, float, int]], zones: list[str], modes: list[bool]) -> str:
    lines = [
        f"{'region':6} {'mode':17} {'published %':>11} {'wait-awhile %':>13} "
        f"{'greenlight %':>12} {'oracle %':>9}"
    ]
    for zone in zones:
        for interruptible in modes:
            k = int(interruptible)
            mode = "interruptible" if interruptible else "non-interruptible"
            cells = [
                _saving_pct(results, zone, p, interruptible)
                for p in (Policy.WAIT_AWHILE, Policy.GREENLIGHT, Policy.ORACLE)
            ]
            lines.append(
                f"{zone:6} {mode:17} {PUBLISHED[zone][k]:11.2f} {cells[0]:13.2f} "
                f"{cells[1]:12.2f} {cells[2]:9.2f}"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--regions", nargs="+", default=list(FILES), choices=list(FILES))
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--jobs", type=int, default=3387)
    parser.add_argument(
        "--batch-days",
        type=float,
        default=1.0,
        help="plan the jobs arriving within this many days in one cycle "
        "(0: one cycle per arrival step)",
    )
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    started = time.perf_counter()
    modes = [MODES[m] for m in args.modes]
    todo = tasks(args.regions, modes, args.seeds, args.jobs, args.batch_days)
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        results = list(pool.map(run_task, todo, chunksize=2))
    cycles = sum(c for _, _, c in results)
    print(
        f"Let's Wait Awhile ML scenario: {args.jobs} jobs, {args.seeds} seeds, "
        f"5% forecast error; savings over run-now"
    )
    print(report(results, args.regions, modes))
    print(
        f"{len(todo)} simulated runs, {cycles} planning cycles, "
        f"{time.perf_counter() - started:.1f} s"
    )


if __name__ == "__main__":
    main()
