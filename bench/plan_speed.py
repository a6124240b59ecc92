"""How fast one planning cycle is, and how close joint placement gets to the optimum.

Two tables:

1. **Speed** — one ``plan_cycle`` over 1k / 10k / 100k pending ``greenlight`` jobs, 10 regions,
   48 h of forecasts at 5-minute slots. The 10 regions are 48 h of real hourly traces
   (Electricity Maps DE/ES/US-CAL-CISO 2021-2023, two of them twice at another date),
   re-timed onto one clock. Jobs are Philly-sized (1-8 GPUs, 1 min to 24 h),
   due within the 48 h; each region has GPUs for half the average load, so jobs contend for
   the cleanest hours. Wall and CPU time of the cycle with an improvement budget, and of the
   greedy alone (budget 0). Target: 10k jobs under 0.5 s on two cores.
2. **Gap to the optimum** — a contended snapshot: 3 regions (DE, ES, US-CAL-CISO, Electricity
   Maps 2022 hourly) with 8 (then 16) GPUs each, 150 Philly-sized jobs (1-8 GPUs, 1 h to 48 h)
   arriving over two weeks, deadline = arrival + duration + 24 h, perfect forecasts. Share of
   the exact optimum's saving over run-at-arrival at home: greedy alone, greedy + improvement
   at several budgets, and the MIP. Target: at least 97%.

Run: ``.venv/bin/python bench/plan_speed.py [--sizes 1000 10000 100000] [--skip-gap]
[--mip-time-limit-s 120]``.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import math
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from scheduler.domain import Forecast, IntensityPoint, JobKind, SeriesKind
from scheduler.forecasts.trace_files import load_carbon_trace
from scheduler.planning.cycle import plan_cycle
from scheduler.planning.optimum import solve_snapshot
from scheduler.planning.snapshot import Decision, PlanningJob, RegionState, Snapshot

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CARBON = DATA / "carbon"
PHILLY = DATA / "jobs" / "pollux_philly" / "philly.csv"
EM_POLIMI = CARBON / "electricitymaps-portal_polimi-carbonbudget"
EM_UMASS = CARBON / "electricitymaps-portal_umassos-decarbonization-potential"
SPEED_TRACES = (  # (trace, day of its year the 48 h start on)
    (EM_POLIMI / "DE_2022_hourly.csv", 130),
    (EM_POLIMI / "DE_2023_hourly.csv", 130),
    (EM_UMASS / "ES_2021_hourly.csv", 130),
    (EM_UMASS / "ES_2022_hourly.csv", 130),
    (EM_UMASS / "ES_2023_hourly.csv", 130),
    (EM_UMASS / "US-CAL-CISO_2021_hourly.csv", 130),
    (EM_UMASS / "US-CAL-CISO_2022_hourly.csv", 130),
    (EM_UMASS / "US-CAL-CISO_2023_hourly.csv", 130),
    (EM_POLIMI / "DE_2022_hourly.csv", 200),
    (EM_UMASS / "ES_2022_hourly.csv", 200),
)
GAP_TRACES = {
    "eu-central": EM_POLIMI / "DE_2022_hourly.csv",
    "eu-south": EM_UMASS / "ES_2022_hourly.csv",
    "us-west": EM_UMASS / "US-CAL-CISO_2022_hourly.csv",
}
NOW = datetime(2024, 5, 10, 8, 3, tzinfo=UTC)
GPU_POWER_W = 300.0


def retimed(path: Path, day_of_year: int, hours: float, now: datetime) -> Forecast:
    """``hours`` of a trace from ``day_of_year`` of its first full year, moved to ``now``'s
    day, as a forecast issued at ``now``."""
    trace = load_carbon_trace(path)
    first = trace.points[0].valid_at
    year = first.year if (first.month, first.day) == (1, 1) else first.year + 1
    source = datetime(year, 1, 1, tzinfo=UTC) + timedelta(days=day_of_year)
    target = now.replace(hour=0, minute=0, second=0, microsecond=0)
    shift = target - source
    end = source + timedelta(hours=hours + 24)
    points = tuple(
        IntensityPoint(valid_at=p.valid_at + shift, g_per_kwh=p.g_per_kwh)
        for p in trace.points
        if source <= p.valid_at < end
    )
    return dataclasses.replace(trace, kind=SeriesKind.FORECAST, issued_at=now, points=points)


def philly_sizes(min_s: float, max_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Durations (s) and GPU counts of the Philly jobs with 1-8 GPUs in ``[min_s, max_s]``."""
    with PHILLY.open(newline="", encoding="utf-8") as handle:
        rows = [r for r in csv.DictReader(handle) if r.get("timestamp")]
    durations = np.array([float(r["duration"]) for r in rows])
    gpus = np.array([int(r["num_gpus"]) for r in rows])
    keep = (gpus <= 8) & (durations >= min_s) & (durations <= max_s)
    return durations[keep], gpus[keep]


def speed_snapshot(n_jobs: int, forecasts: dict[str, Forecast], budget_s: float) -> Snapshot:
    rng = np.random.default_rng(0)
    durations, gpus = philly_sizes(60, 24 * 3600)
    pick = rng.choice(len(durations), n_jobs)
    names = sorted(forecasts)
    jobs = []
    for i, k in enumerate(pick):
        duration = float(durations[k])
        slack = float(rng.uniform(0, max(0.0, 47 * 3600 - duration)))
        jobs.append(
            PlanningJob(
                id=f"j{i:06d}",
                kind=JobKind.TRAINING,
                gpus=int(gpus[k]),
                power_w=GPU_POWER_W * int(gpus[k]),
                duration_s=duration,
                submitted_at=NOW - timedelta(seconds=float(rng.uniform(0, 3600))),
                earliest_start=NOW,
                deadline=NOW + timedelta(seconds=duration + slack),
                home_region=names[i % len(names)],
                allowed_regions=(),
            )
        )
    gpu_hours = sum(j.gpus * j.duration_s for j in jobs) / 3600
    per_region = math.ceil(gpu_hours / 48 / len(names) / 0.5) + 8
    regions = tuple(
        RegionState(name=n, gpus=per_region, pue=1.1 + 0.02 * i) for i, n in enumerate(names)
    )
    return Snapshot(
        now=NOW,
        jobs=tuple(jobs),
        regions=regions,
        forecasts=forecasts,
        step_s=300,
        budget_s=budget_s,
    )


def timed(snapshot: Snapshot) -> tuple[Decision, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    decision = plan_cycle(snapshot)
    return decision, time.perf_counter() - wall, time.process_time() - cpu


def speed_table(sizes: Sequence[int], budget_s: float) -> None:
    forecasts = {f"r{i}": retimed(path, day, 48, NOW) for i, (path, day) in enumerate(SPEED_TRACES)}
    # A service plans every cycle in one long-lived process: the first cycle also loads the
    # compiled greedy loop from numba's on-disk cache (compiles it on a fresh checkout).
    _, first_wall, _ = timed(speed_snapshot(100, forecasts, budget_s))
    print(f"\nFirst cycle in a process (loads the compiled loop): {first_wall * 1000:.0f} ms")
    print(f"\nOne cycle, 10 regions x 48 h at 5-minute slots (improvement budget {budget_s} s)")
    print(
        f"{'jobs':>8} {'GPUs/region':>11} {'cycle ms':>9} {'cpu ms':>8} {'jobs/s':>9} "
        f"{'greedy ms':>10} {'late':>5}"
    )
    for n in sizes:
        snap = speed_snapshot(n, forecasts, budget_s)
        decision, wall, cpu = timed(snap)
        _, greedy_wall, _ = timed(dataclasses.replace(snap, budget_s=0.0))
        print(
            f"{n:>8} {snap.regions[0].gpus:>11} {wall * 1000:>9.0f} {cpu * 1000:>8.0f} "
            f"{n / wall:>9.0f} {greedy_wall * 1000:>10.0f} {len(decision.late):>5}"
        )


def gap_snapshot(gpus: int, seed: int = 5) -> Snapshot:
    rng = np.random.default_rng(seed)
    durations, sizes = philly_sizes(3600, 48 * 3600)
    pick = rng.choice(len(durations), 150, replace=False)
    start = datetime(2022, 3, 7, tzinfo=UTC)
    arrivals = np.sort(rng.uniform(0, 14 * 24 * 3600 * 0.9, 150))
    names = list(GAP_TRACES)
    jobs = []
    for i, (k, offset) in enumerate(zip(pick, arrivals, strict=True)):
        at = start + timedelta(seconds=float(offset))
        duration = float(durations[k])
        jobs.append(
            PlanningJob(
                id=f"j{i:03d}",
                kind=JobKind.TRAINING,
                gpus=int(sizes[k]),
                power_w=GPU_POWER_W * int(sizes[k]),
                duration_s=duration,
                submitted_at=at,
                earliest_start=at,
                deadline=at + timedelta(seconds=duration + 24 * 3600),
                home_region=names[i % 3],
                allowed_regions=(),
            )
        )
    series = {}
    for name, path in GAP_TRACES.items():
        trace = load_carbon_trace(path)
        points = tuple(p for p in trace.points if start <= p.valid_at < start + timedelta(days=17))
        series[name] = dataclasses.replace(
            trace, kind=SeriesKind.FORECAST, issued_at=start, points=points
        )
    return Snapshot(
        now=start,
        jobs=tuple(jobs),
        regions=tuple(RegionState(name=n, gpus=gpus, pue=1.2) for n in names),
        forecasts=series,
        actuals=series,
        step_s=3600,
    )


def total_g(decision: Decision, baseline: bool = False) -> float:
    return sum(
        p.baseline_emissions_g if baseline else p.forecast_emissions_g
        for p in decision.plans.values()
    )


def gap_table(budgets: Sequence[float], mip_time_limit_s: float) -> None:
    print(
        "\nGap to the optimum: 3 regions, 150 Philly-sized jobs over two weeks, hourly "
        "Electricity Maps 2022, perfect forecasts"
    )
    print(
        f"{'GPUs':>5} {'placement':<18} {'emissions kg':>12} {'saving %':>9} "
        f"{'of optimum %':>12} {'late':>5} {'cpu s':>7}"
    )
    for gpus in (8, 16):
        snap = gap_snapshot(gpus)
        rows: list[tuple[str, Decision, float]] = []
        for budget in (0.0, *budgets):
            decision, _, cpu = timed(dataclasses.replace(snap, budget_s=budget))
            rows.append(("greedy" if budget == 0 else f"improved {budget:g} s", decision, cpu))
        cpu = time.process_time()
        optimum = solve_snapshot(snap, mip_time_limit_s)
        rows.append(("optimum (MIP)", optimum, time.process_time() - cpu))
        base = total_g(rows[0][1], baseline=True)
        best_saving = base - total_g(optimum)
        for label, decision, seconds in rows:
            saving = base - total_g(decision)
            print(
                f"{gpus:>5} {label:<18} {total_g(decision) / 1000:>12.1f} "
                f"{100 * saving / base:>9.1f} {100 * saving / best_saving:>12.1f} "
                f"{len(decision.late):>5} {seconds:>7.2f}"
            )
        note = next(iter(optimum.notes.values()), "")
        print(f"      ({note})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[1000, 10000, 100000])
    parser.add_argument("--budget-s", type=float, default=0.1)
    parser.add_argument("--gap-budgets-s", type=float, nargs="*", default=[0.3, 1.0, 2.0])
    parser.add_argument("--mip-time-limit-s", type=float, default=120.0)
    parser.add_argument("--skip-gap", action="store_true")
    args = parser.parse_args()
    speed_table(args.sizes, args.budget_s)
    if not args.skip_gap:
        gap_table(args.gap_budgets_s, args.mip_time_limit_s)


if __name__ == "__main__":
    main()
