"""``run_simulation`` end to end on real files: table rows, CSV, PNG, baseline by hand."""

from __future__ import annotations

import csv
import math
from datetime import UTC, datetime
from pathlib import Path

import pytest

from scheduler.domain import Policy
from scheduler.forecasts.replay import TRACES_DIR
from scheduler.simulation.cli import SimulationOptions, run_simulation
from scheduler.simulation.job_traces import read_job_trace
from scheduler.simulation.results import CSV_COLUMNS, format_table, rich_table
from tests.shared_data import SHARED_DATA, requires_shared_data

# The Electricity Maps traces ship with the package; the Alibaba job trace is read in place.
ES = TRACES_DIR / "ES_2023_hourly.csv"
CISO = TRACES_DIR / "US-CAL-CISO_2023_hourly.csv"
ALIBABA = SHARED_DATA / "jobs" / "alibaba_cluster-trace-gpu-v2023" / "openb_pod_list_default.csv"
pytestmark = requires_shared_data


@pytest.fixture(scope="module")
def trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Fifteen real Alibaba GPU pods that ran between 30 min and 6 h, arriving in one week."""
    with ALIBABA.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    kept = [
        r
        for r in rows
        if r["scheduled_time"]
        and int(r["num_gpu"]) in (1, 2)
        and 1800 <= int(r["deletion_time"]) - int(r["scheduled_time"]) <= 6 * 3600
        and 10_000_000 <= int(r["creation_time"]) < 10_000_000 + 7 * 86400
    ][:15]
    path = tmp_path_factory.mktemp("trace") / "pods.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(kept)
    return path


def _hourly(path: Path) -> dict[float, float]:
    with path.open(newline="", encoding="utf-8") as handle:
        return {
            datetime.fromisoformat(r["Datetime (UTC)"]).replace(tzinfo=UTC).timestamp(): float(
                r["Carbon Intensity gCO₂eq/kWh (LCA)"]
            )
            for r in csv.DictReader(handle)
        }


def test_run_simulation_writes_table_csv_and_png(trace: Path, tmp_path: Path) -> None:
    seen: list[tuple[str, int, int]] = []
    result = run_simulation(
        trace,
        [ES, CISO],
        regions=["es", "ciso"],
        policies=[Policy.GREENLIGHT, Policy.WAIT_AWHILE, Policy.ORACLE],
        capacity=None,
        forecast_error=0.05,
        seed=4,
        out_dir=tmp_path,
        progress=lambda label, done, total: seen.append((label, done, total)),
        options=SimulationOptions(slack_s=8 * 3600.0),
    )
    labels = [r.label for r in result.rows]
    assert labels == ["now", "greenlight", "wait-awhile", "oracle", "optimum"]
    assert result.jobs == 15
    assert {label for label, _, _ in seen} == {"now", "greenlight", "wait-awhile", "oracle"}
    assert all(done <= total == 15 for _, done, total in seen)
    # Without capacity limits the optimum is the oracle, and nothing beats it on actuals.
    assert result.row("optimum").emissions_g == result.row("oracle").emissions_g
    assert all(r.emissions_g >= result.row("optimum").emissions_g - 1e-6 for r in result.rows)
    assert result.row("now").saving_vs_now_pct == 0.0
    assert result.row("oracle").share_of_optimum_pct == pytest.approx(100.0)

    # The baseline by hand: each pod at its (15-min aligned) arrival in its home region.
    assert result.csv_path is not None
    assert result.png_path is not None
    with result.csv_path.open(newline="", encoding="utf-8") as handle:
        table = list(csv.DictReader(handle))
    assert tuple(table[0]) == CSV_COLUMNS
    assert [row["policy"] for row in table] == labels
    assert float(table[0]["emissions_g"]) == pytest.approx(result.row("now").emissions_g, rel=1e-6)
    assert result.png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "greenlight" in format_table(result.rows)
    assert rich_table(result).row_count == len(result.rows)


def test_now_row_recomputed_from_the_raw_files(trace: Path) -> None:
    result = run_simulation(
        trace,
        [ES],
        policies=[Policy.NOW],
        capacity=None,
        forecast_error=0.0,
        seed=0,
        options=SimulationOptions(slack_s=3600.0),
    )
    hourly = _hourly(ES)
    start = result.start.timestamp()
    grams = 0.0
    for record in read_job_trace(trace).records:
        arrival = start + math.ceil(record.arrival_s / 900) * 900
        power_kw = (20 + 300 * record.gpus + 12 * record.cpus) / 1000
        t, end = arrival, arrival + record.duration_s
        while t < end:
            hour = math.floor(t / 3600) * 3600
            upto = min(end, hour + 3600)
            grams += power_kw * (upto - t) / 3600 * hourly[hour]
            t = upto
    assert result.row("now").emissions_g == pytest.approx(grams, rel=1e-9)
    assert result.row("now").deadline_misses == 0


def test_capacity_limited_run_has_an_exact_optimum(trace: Path) -> None:
    result = run_simulation(
        trace,
        [ES, CISO],
        policies=[Policy.GREENLIGHT],
        capacity=2,
        forecast_error=0.05,
        seed=1,
        options=SimulationOptions(slack_s=6 * 3600.0, optimum_time_limit_s=20.0),
    )
    optimum = result.row("optimum")
    assert optimum.deadline_misses == 0
    assert all(peak <= 2 for row in result.rows for peak in row.peak_gpus.values())
    assert optimum.emissions_g <= result.row("now").emissions_g
    assert result.row("greenlight").gpu_utilisation is not None
