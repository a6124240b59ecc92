"""The simulator on a short real trace: its figures recomputed independently from the raw files."""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from scheduler.domain import Forecast, Policy
from scheduler.forecasts.replay import TRACES_DIR
from scheduler.forecasts.trace_files import load_carbon_trace, load_forecast_trace
from scheduler.simulation.engine import PolicyRun, simulate
from scheduler.simulation.forecasting import (
    ForecastModel,
    gaussian_forecast,
    issued_forecasts,
    perfect_forecast,
)
from scheduler.simulation.grid import build_grid
from scheduler.simulation.job_traces import (
    SimJob,
    read_job_trace,
    select_records,
    slack_deadline,
    to_sim_jobs,
)
from scheduler.simulation.metrics import job_emissions_g, measure, peak_gpus
from scheduler.simulation.scenario import Scenario, SimRegion
from tests.shared_data import SHARED_DATA, requires_shared_data

DATA = SHARED_DATA
# A real job trace slice (tests/data) and the Electricity Maps traces the package ships: this
# suite needs nothing outside the repository.
PHILLY = Path(__file__).resolve().parents[1] / "data" / "philly_head.csv"
EM_FILES = {"es": TRACES_DIR / "ES_2023_hourly.csv", "de": TRACES_DIR / "DE_2023_hourly.csv"}
PUE = {"es": 1.2, "de": 1.15}
START = datetime(2023, 3, 1, tzinfo=UTC)
STEP_S = 900


def _hourly_lca(path: Path) -> dict[datetime, float]:
    """The raw file read by hand: hour start -> life-cycle g/kWh."""
    with path.open(newline="", encoding="utf-8") as handle:
        return {
            datetime.fromisoformat(r["Datetime (UTC)"]).replace(tzinfo=UTC): float(
                r["Carbon Intensity gCO₂eq/kWh (LCA)"]
            )
            for r in csv.DictReader(handle)
        }


def _hand_grams(
    hourly: Mapping[datetime, float], job: SimJob, pue: float, start_s: float, end_s: float
) -> float:
    """power x PUE x Σ (hours overlapped x g/kWh), summed hour by hour."""
    grams = 0.0
    hour = math.floor(start_s / 3600) * 3600
    while hour < end_s:
        overlap_h = (min(end_s, hour + 3600) - max(start_s, hour)) / 3600
        grams += job.power_w / 1000 * pue * overlap_h * hourly[datetime.fromtimestamp(hour, UTC)]
        hour += 3600
    return grams


@pytest.fixture(scope="module")
def hourly() -> dict[str, dict[datetime, float]]:
    return {name: _hourly_lca(path) for name, path in EM_FILES.items()}


@pytest.fixture(scope="module")
def series() -> dict[str, Forecast]:
    return {name: load_carbon_trace(path) for name, path in EM_FILES.items()}


@pytest.fixture(scope="module")
def jobs(tmp_path_factory: pytest.TempPathFactory) -> list[SimJob]:
    lines = PHILLY.read_text(encoding="utf-8").splitlines(keepends=True)[:1500]
    sliced = tmp_path_factory.mktemp("philly") / "philly.csv"
    sliced.write_text("".join(lines), encoding="utf-8")
    records = select_records(
        read_job_trace(sliced),
        min_duration_s=1800,
        max_duration_s=8 * 3600,
        min_gpus=1,
        max_gpus=2,
        count=12,
        seed=1,
        offset_s=9 * 86400,
        window_s=2 * 86400,
    )
    return to_sim_jobs(
        records,
        start=START,
        regions=tuple(EM_FILES),
        align_s=STEP_S,
        seed=2,
        deadline_rule=slack_deadline(6 * 3600.0),
    )


def _scenario(
    jobs: list[SimJob],
    series: Mapping[str, Forecast],
    *,
    gpus: int | None = None,
    sigma: float = 0.0,
    seed: int = 0,
    cycle_s: int | None = None,
) -> Scenario:
    end = max(j.deadline for j in jobs) + timedelta(days=1)
    grid = build_grid(series, start=START, end=end, step_s=STEP_S)
    models: dict[str, ForecastModel] = {
        name: (
            gaussian_forecast(actual, sigma, np.random.default_rng([seed, i]))
            if sigma
            else perfect_forecast(actual)
        )
        for i, (name, actual) in enumerate(grid.actuals.items())
    }
    regions = tuple(SimRegion(name=n, zone=n.upper(), gpus=gpus, pue=PUE[n]) for n in series)
    return Scenario(jobs=tuple(jobs), regions=regions, grid=grid, forecasts=models, cycle_s=cycle_s)


def _runs(run: PolicyRun) -> list[list[tuple[str, float, float]]]:
    return [[(r.region, r.start_s, r.end_s) for r in rec.runs] for rec in run.records]


def test_now_baseline_matches_the_trace_by_hand(
    jobs: list[SimJob],
    series: dict[str, Forecast],
    hourly: dict[str, dict[datetime, float]],
) -> None:
    scenario = _scenario(jobs, series)
    run = simulate(scenario, Policy.NOW)
    by_hand = [
        _hand_grams(
            hourly[j.home_region],
            j,
            PUE[j.home_region],
            j.arrival.timestamp(),
            j.arrival.timestamp() + j.duration_s,
        )
        for j in jobs
    ]
    np.testing.assert_allclose(job_emissions_g(scenario, run.records), by_hand, rtol=1e-9)
    metrics = measure(scenario, run)
    assert metrics.emissions_g == pytest.approx(sum(by_hand), rel=1e-9)
    assert metrics.mean_wait_s == 0.0
    assert metrics.deadline_misses == 0
    assert [rec.runs[0].region for rec in run.records] == [j.home_region for j in jobs]


def test_oracle_finds_the_best_window_by_brute_force(
    jobs: list[SimJob],
    series: dict[str, Forecast],
    hourly: dict[str, dict[datetime, float]],
) -> None:
    one_region = [
        SimJob(
            id=j.id,
            arrival=j.arrival,
            duration_s=j.duration_s,
            gpus=j.gpus,
            power_w=j.power_w,
            deadline=j.deadline,
            home_region="es",
            allowed_regions=("es",),
        )
        for j in jobs
    ]
    scenario = _scenario(one_region, {"es": series["es"]})
    got = job_emissions_g(scenario, simulate(scenario, Policy.ORACLE).records)
    for job, grams in zip(one_region, got, strict=True):
        first, last = job.arrival.timestamp(), job.deadline.timestamp() - job.duration_s
        starts = np.arange(first, last + 1, STEP_S)
        best = min(_hand_grams(hourly["es"], job, PUE["es"], s, s + job.duration_s) for s in starts)
        assert grams == pytest.approx(best, rel=1e-9)


def test_seeded_forecast_error_run_is_reproducible_and_accounted_on_actuals(
    jobs: list[SimJob],
    series: dict[str, Forecast],
    hourly: dict[str, dict[datetime, float]],
) -> None:
    scenario = _scenario(jobs, series, gpus=3, sigma=0.05, seed=3)
    first, second = simulate(scenario, Policy.GREENLIGHT), simulate(scenario, Policy.GREENLIGHT)
    assert _runs(first) == _runs(second)
    metrics = measure(scenario, first)
    grams, waits = 0.0, []
    for record in first.records:
        job = record.job
        assert sum(r.end_s - r.start_s for r in record.runs) == pytest.approx(job.duration_s)
        assert record.runs[0].start_s >= job.arrival.timestamp()
        assert record.runs[-1].end_s <= job.deadline.timestamp() + 1.0
        grams += sum(
            _hand_grams(hourly[r.region], job, PUE[r.region], r.start_s, r.end_s)
            for r in record.runs
        )
        waits.append(record.runs[0].start_s - job.arrival.timestamp())
    assert metrics.emissions_g == pytest.approx(grams, rel=1e-9)
    assert metrics.mean_wait_s == pytest.approx(float(np.mean(waits)))
    assert metrics.p95_wait_s == pytest.approx(float(np.percentile(waits, 95)))
    assert metrics.deadline_misses == 0
    assert all(peak <= 3 for peak in peak_gpus(first.records).values())


@pytest.mark.parametrize("policy", [Policy.NOW, Policy.LOWEST_WINDOW, Policy.WAIT_AWHILE])
def test_event_driven_and_every_cycle_replays_agree(
    jobs: list[SimJob],
    series: dict[str, Forecast],
    policy: Policy,
) -> None:
    # Policies whose plan for a waiting job changes only when its inputs do: skipping the
    # cycles where nothing changed cannot change a run. Hourly planning keeps the replay short.
    scenario = _scenario(jobs[:8], series, gpus=2, cycle_s=3600)
    event = simulate(scenario, policy)
    every = simulate(scenario, policy, every_cycle=True)
    assert _runs(event) == _runs(every)
    assert every.cycles >= event.cycles
    assert all(peak <= 2 for peak in peak_gpus(event.records).values())


def test_a_longer_planning_interval_batches_arrivals_and_dispatches_on_the_grid(
    jobs: list[SimJob],
    series: dict[str, Forecast],
) -> None:
    cycle_s = 4 * STEP_S
    fine = simulate(_scenario(jobs, series, gpus=2), Policy.GREENLIGHT)
    coarse = simulate(_scenario(jobs, series, gpus=2, cycle_s=cycle_s), Policy.GREENLIGHT)
    assert coarse.cycles < fine.cycles
    origin = START.timestamp()
    for record in coarse.records:
        # Nothing starts before the first planning cycle at or after the arrival...
        arrival_s = record.job.arrival.timestamp()
        first_cycle_s = origin + math.ceil((arrival_s - origin) / cycle_s) * cycle_s
        assert record.runs[0].start_s >= first_cycle_s
        # ...but starts are dispatched on the grid step, not only on cycle boundaries.
        assert all((run.start_s - origin) % STEP_S == 0 for run in record.runs)
        assert record.finished
        assert record.runs[-1].end_s <= record.job.deadline.timestamp() + 1.0
    assert all(peak <= 2 for peak in peak_gpus(coarse.records).values())


def _job(job_id: str, arrival: datetime, duration_s: float, gpus: int, slack_s: float) -> SimJob:
    return SimJob(
        id=job_id,
        arrival=arrival,
        duration_s=duration_s,
        gpus=gpus,
        power_w=300.0 * gpus,
        deadline=arrival + timedelta(seconds=duration_s + slack_s),
        home_region="es",
        allowed_regions=("es",),
    )


def test_a_job_refused_for_capacity_waits_for_freed_gpus_not_every_step(
    series: dict[str, Forecast],
) -> None:
    # ``long`` holds the region's only GPU past ``blocked``'s deadline: the planner cannot fit
    # ``blocked`` before its deadline, so the engine refuses it until ``long`` ends.
    long = _job("long", START + timedelta(hours=1), 30 * 3600.0, 1, 3600.0)
    blocked = _job("blocked", START + timedelta(hours=2), 3600.0, 1, 2 * 3600.0)
    scenario = _scenario([long, blocked], {"es": series["es"]}, gpus=1)
    run = simulate(scenario, Policy.NOW)
    first, second = run.records
    long_end_s = first.runs[0].end_s
    assert first.runs[0].start_s == long.arrival.timestamp()
    assert second.runs[0].start_s == math.ceil(long_end_s / STEP_S) * STEP_S
    assert second.finished
    # One cycle per thing that can change a plan: two arrivals and the end of ``long``.
    assert run.cycles <= 3
    assert second.capacity_holds >= 1
    assert measure(scenario, run).deadline_misses == 1


def test_a_job_wider_than_every_region_never_runs_and_is_never_planned(
    series: dict[str, Forecast],
) -> None:
    wide = _job("wide", START + timedelta(hours=1), 3600.0, 4, 3600.0)
    narrow = _job("narrow", START + timedelta(hours=3), 3600.0, 1, 3600.0)
    scenario = _scenario([wide, narrow], {"es": series["es"]}, gpus=2)
    run = simulate(scenario, Policy.GREENLIGHT)
    assert run.records[0].runs == []
    assert run.records[1].finished
    # Only ``narrow``'s arrival asks for a plan.
    assert run.cycles == 1


def test_fast_path_agrees_with_the_general_loop(
    jobs: list[SimJob],
    series: dict[str, Forecast],
) -> None:
    scenario = _scenario(jobs, series, sigma=0.05, seed=5)
    fast = simulate(scenario, Policy.WAIT_AWHILE)
    batched = simulate(scenario, Policy.WAIT_AWHILE, batch_s=86400.0)
    general = simulate(scenario, Policy.WAIT_AWHILE, every_cycle=True)
    assert _runs(fast) == _runs(general) == _runs(batched)
    assert batched.cycles <= fast.cycles


def test_interruptible_jobs_run_their_full_duration_inside_the_deadline(
    jobs: list[SimJob],
    series: dict[str, Forecast],
) -> None:
    split = [
        SimJob(
            id=j.id,
            arrival=j.arrival,
            duration_s=j.duration_s,
            gpus=j.gpus,
            power_w=j.power_w,
            deadline=j.deadline,
            home_region=j.home_region,
            allowed_regions=j.allowed_regions,
            interruptible=True,
        )
        for j in jobs
    ]
    for scenario in (_scenario(split, series), _scenario(split, series, gpus=2)):
        run = simulate(scenario, Policy.WAIT_AWHILE)
        for record in run.records:
            assert sum(r.end_s - r.start_s for r in record.runs) == pytest.approx(
                record.job.duration_s
            )
            assert record.runs[0].start_s >= record.job.arrival.timestamp()
            assert record.runs[-1].end_s <= record.job.deadline.timestamp() + 1.0
            ordered = all(
                a.end_s <= b.start_s for a, b in zip(record.runs, record.runs[1:], strict=False)
            )
            assert ordered


@requires_shared_data
def test_issued_forecasts_are_replanned_as_each_new_issue_arrives(tmp_path: Path) -> None:
    vessim = DATA / "carbon" / "vessim-watttime"
    source = vessim / "watttime2023_caiso-north_forecast.csv"
    head = source.read_text(encoding="utf-8").splitlines(keepends=True)[: 13 * 60 + 1]
    (tmp_path / source.name).write_text("".join(head), encoding="utf-8")
    start = datetime(2023, 6, 8, tzinfo=UTC)
    actual_series = load_carbon_trace(vessim / "watttime2023_caiso-north_actual.csv")
    grid = build_grid({"n": actual_series}, start=start, end=start + timedelta(hours=6), step_s=300)
    model = issued_forecasts(
        grid.actuals["n"], load_forecast_trace(tmp_path / source.name), grid.start_s, 300
    )
    jobs = [
        SimJob(
            id=f"j{i}",
            arrival=start + timedelta(hours=1, minutes=20 * i),
            duration_s=1500.0,
            gpus=1,
            power_w=400.0,
            home_region="n",
            allowed_regions=("n",),
            deadline=start + timedelta(hours=1, minutes=20 * i + 25 + 90),
        )
        for i in range(4)
    ]
    scenario = Scenario(
        jobs=tuple(jobs),
        regions=(SimRegion(name="n", zone="CAISO_NORTH", gpus=1),),
        grid=grid,
        forecasts={"n": model},
    )
    run = simulate(scenario, Policy.GREENLIGHT)
    with (vessim / "watttime2023_caiso-north_actual.csv").open(encoding="utf-8") as handle:
        raw = {
            datetime.fromisoformat(r["time"]).replace(tzinfo=UTC).timestamp(): float(
                r["Caiso_North"]
            )
            for r in csv.DictReader(handle)
        }
    grams = 0.0
    for record in run.records:
        assert sum(r.end_s - r.start_s for r in record.runs) == pytest.approx(1500.0)
        assert record.runs[-1].end_s <= record.job.deadline.timestamp()
        for r in record.runs:
            t = r.start_s
            while t < r.end_s:
                upto = min(r.end_s, math.floor(t / 300) * 300 + 300)
                grams += 0.4 * (upto - t) / 3600 * raw[math.floor(t / 300) * 300]
                t = upto
    assert measure(scenario, run).emissions_g == pytest.approx(grams, rel=1e-9)
    assert peak_gpus(run.records) == {"n": 1}
    # A forecast is issued every 5 minutes: jobs still waiting are re-planned on each one.
    assert run.cycles > len(jobs)
