"""``greenlight simulate`` on traces a user brings, through CliRunner: mapped and detected
formats shown in the header and in ``--json``, ``--align-year``, CPU capacity, the optimum's
solver progress, help at 80 columns, and exit codes (2: bad input, 1: a failed run). Every trace
is a small file written here, so nothing outside the repository is read."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from scheduler.cli.main import app
from scheduler.simulation.carbon_traces import ACCEPTED_CARBON_FORMATS
from scheduler.simulation.cli import SimulationOptions, run_simulation
from scheduler.simulation.job_readers import ACCEPTED_JOB_FORMATS

START = datetime(2023, 10, 2, tzinfo=UTC)  # a Monday
DAYS = 6


def _intensity(hour: int) -> float:
    """A daily cycle: clean at midday, dirty at night (g/kWh)."""
    return 300.0 + 150.0 * math.cos(2 * math.pi * hour / 24)


@pytest.fixture
def carbon(tmp_path: Path) -> tuple[Path, Path]:
    """Six days of hourly intensity in two formats: Let's Wait Awhile (g/kWh) and a WattTime
    CSV (lbs/MWh)."""
    hours = [START + timedelta(hours=h) for h in range(DAYS * 24)]
    lwa = tmp_path / "ger_ci.csv"
    lwa.write_text(
        "Time,Carbon Intensity\n"
        + "".join(f"{t:%Y-%m-%d %H:%M:%S},{_intensity(t.hour):.3f}\n" for t in hours),
        encoding="utf-8",
    )
    watttime = tmp_path / "CAISO_NORTH_co2_moer_2023-10-02_2023-10-08.csv"
    watttime.write_text(
        "point_time,value\n"
        + "".join(
            f"{t.isoformat(sep=' ')},{_intensity((t.hour + 8) % 24) / 0.453592:.3f}\n"
            for t in hours
        ),
        encoding="utf-8",
    )
    return lwa, watttime


@pytest.fixture
def cluster_jobs(tmp_path: Path) -> Path:
    """A cluster's own export from 2017 (other columns, ISO and epoch times), one job still
    running."""
    path = tmp_path / "cluster.csv"
    path.write_text(
        "job,queued,began,finished,gpu\n"
        "a,2017-10-02 20:00:00,2017-10-02 20:00:00,2017-10-02 22:00:00,1\n"
        "b,2017-10-03 21:00:00,2017-10-03 21:30:00,2017-10-03 23:30:00,2\n"
        "c,1507064400,1507064400,1507071600,1\n"  # 2017-10-03 21:00 UTC
        "d,2017-10-04 08:00:00,2017-10-04 08:00:00,,1\n",
        encoding="utf-8",
    )
    return path


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["simulate", *args])
    return result.exit_code, result.stdout, result.stderr


def test_a_mapped_job_trace_on_two_carbon_formats_with_align_year(
    carbon: tuple[Path, Path], cluster_jobs: Path
) -> None:
    lwa, watttime = carbon
    args = [
        "--jobs", str(cluster_jobs),
        "--job-columns", "submit=queued,start=began,end=finished,gpus=gpu",
        "--carbon", str(lwa), "--carbon", str(watttime),
        "--from", "2017-10-02", "--to", "2017-10-03", "--align-year",
        "--policy", "lowest-window", "--slack-s", "43200", "--forecast-error", "0",
        "--no-progress",
    ]  # fmt: skip
    code, stdout, stderr = _run(*args, "--json")
    assert code == 0, stderr
    body = json.loads(stdout)
    assert body["regions"] == ["DE", "CAISO_NORTH"]
    assert body["jobs"] == 3
    assert [t["format"] for t in body["traces"]] == ["mapped", "lets-wait-awhile", "watttime"]
    assert body["traces"][0]["detail"] == "3 jobs read, 1 row skipped (no end 1)"
    assert body["traces"][2]["detail"] == (
        "CAISO_NORTH, lbs/MWh, 60 min steps, 2023-10-02 00:00 to 2023-10-08 00:00"
    )
    assert body["notes"][:2] == [
        "selected jobs submitted from 2017-10-02 00:00 to 2017-10-04 00:00 (exclusive)",
        "--align-year: jobs from Mon 2017-10-02 00:00 moved +313 weeks to Mon 2023-10-02 "
        "00:00 UTC (day of week and hour kept)",
    ]
    rows = {r["label"]: r for r in body["rows"]}
    assert rows["lowest-window"]["emissions_g"] < rows["now"]["emissions_g"]
    code, table, _ = _run(*args)
    assert code == 0
    assert f"jobs: {cluster_jobs} [mapped] 3 jobs read, 1 row skipped (no end 1)" in table
    assert f"carbon: {watttime} [watttime] CAISO_NORTH, lbs/MWh" in table
    assert "note: --align-year: jobs from Mon 2017-10-02 00:00 moved +313 weeks" in table


def _gaia(tmp_path: Path) -> Path:
    path = tmp_path / "gaia.csv"
    # Three 4-core jobs arriving together (hours): with 8 cores one must wait.
    path.write_text("arrival_time,length,cpus\n0,2,4\n0,2,4\n0,2,4\n", encoding="utf-8")
    return path


def test_cpu_capacity_binds_on_a_cpu_only_trace(carbon: tuple[Path, Path], tmp_path: Path) -> None:
    jobs = str(_gaia(tmp_path))
    base = ["--jobs", jobs, "--carbon", str(carbon[0]), "--policy", "now", "--json"]
    code, stdout, stderr = _run(*base, "--cpu-capacity", "8", "--optimum-max-jobs", "0")
    assert code == 0, stderr
    body = json.loads(stdout)
    assert body["capacity_resource"] == "CPU"
    now = body["rows"][0]
    assert now["peak_gpus"] == {"DE": 8}  # the capacity counts cores here
    assert now["p95_wait_s"] > 0
    assert body["warnings"] == []
    # Unlimited: nobody waits.
    code, stdout, _ = _run(*base, "--no-progress")
    assert json.loads(stdout)["rows"][0]["p95_wait_s"] == 0


def test_a_gpu_capacity_on_a_cpu_only_trace_warns_that_it_does_not_bind(
    carbon: tuple[Path, Path], tmp_path: Path
) -> None:
    jobs = str(_gaia(tmp_path))
    code, stdout, stderr = _run(
        "--jobs", jobs, "--carbon", str(carbon[0]), "--capacity", "4", "--policy", "now",
        "--json", "--no-progress",
    )  # fmt: skip
    assert code == 0, stderr
    warning = (
        f"--capacity 4 does not bind: no job in {jobs} asks for a GPU; "
        "--cpu-capacity limits CPU cores"
    )
    assert stderr.splitlines() == [f"greenlight: warning: {warning}"]
    body = json.loads(stdout)
    assert body["warnings"] == [warning]
    assert body["rows"][0]["p95_wait_s"] == 0


def test_the_optimum_reports_its_solver_stages(carbon: tuple[Path, Path], tmp_path: Path) -> None:
    jobs = str(_gaia(tmp_path))
    code, _, stderr = _run(
        "--jobs", jobs, "--carbon", str(carbon[0]), "--cpu-capacity", "8", "--policy", "now",
        "--optimum-time-limit", "20", "--optimum-max-nonzeros", "100000", "--json",
    )  # fmt: skip
    assert code == 0, stderr
    stages = [line for line in stderr.splitlines() if line.startswith("simulate: optimum ")]
    assert stages[0].startswith("simulate: optimum 0/1 jobs")
    assert stages[1].startswith("simulate: optimum planner's placement: best ")
    assert stages[2].startswith("simulate: optimum LP bound: bound ")
    assert any("gap " in line for line in stages)
    assert stages[-2].startswith("simulate: optimum done: best ")
    assert stages[-1].startswith("simulate: optimum 1/1 jobs (100%)")


def test_parallel_policies_report_progress_through_the_parent(
    carbon: tuple[Path, Path], tmp_path: Path
) -> None:
    path = tmp_path / "many.csv"
    path.write_text(
        "arrival_time,length,cpus\n" + "".join(f"{h / 4},1,4\n" for h in range(24)),
        encoding="utf-8",
    )
    seen: list[tuple[str, int, int]] = []
    run_simulation(
        path,
        [carbon[0]],
        policies=["now", "lowest-window"],
        progress=lambda label, done, total: seen.append((label, done, total)),
        options=SimulationOptions(cpu_capacity=8, workers=2, optimum_max_jobs=0),
    )
    for label in ("now", "lowest-window"):
        counts = [done for name, done, _ in seen if name == label]
        assert counts[0] == 0
        assert counts[-1] == 24
        assert any(0 < c < 24 for c in counts), f"{label} jumped from 0 to done: {counts}"


def _write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_bad_input_exits_2_with_one_line_naming_the_file(
    carbon: tuple[Path, Path], tmp_path: Path
) -> None:
    lwa = str(carbon[0])
    gaia = str(_gaia(tmp_path))
    unknown = _write(tmp_path, "mine.csv", "when,how_long\n1,2\n")
    bad_row = _write(tmp_path, "bad.csv", "Time,Carbon Intensity\n2023-10-02 00:00,xyz\n")
    other_year = _write(tmp_path, "fr_ci.csv", "Time,Carbon Intensity\n2019-01-01 00:00,50\n")
    cases = [
        (
            ["--jobs", unknown, "--carbon", lwa],
            f"{unknown}: unrecognised job trace columns ['how_long', 'when']: accepted formats: "
            f"{ACCEPTED_JOB_FORMATS}",
        ),
        (
            ["--jobs", gaia, "--carbon", unknown],
            f"{unknown}: unrecognised carbon trace columns ['when', 'how_long']: accepted "
            f"formats: {ACCEPTED_CARBON_FORMATS}",
        ),
        (
            ["--jobs", gaia, "--carbon", bad_row],
            f"{bad_row}: row 2, column 'Carbon Intensity': expected an intensity in g/kWh, "
            "got 'xyz'",
        ),
        (
            ["--jobs", gaia, "--carbon", lwa, "--carbon", other_year],
            "the carbon traces do not overlap in time (DE "
            f"{lwa}: 2023-10-02 00:00 to 2023-10-08 00:00; FR {other_year}: 2019-01-01 00:00 to "
            "2019-01-01 01:00): expected one common span",
        ),
        (
            ["--jobs", gaia, "--carbon", lwa, "--from", "2023-10-02"],
            f"{gaia}: --from/--to need a trace with absolute times, and this gaia trace counts "
            "from its own start: use --start-offset (e.g. 30d) instead",
        ),
        (
            ["--jobs", gaia, "--carbon", lwa, "--job-columns", "submit"],
            "--job-columns: cannot read 'submit': expected key=column with keys submit, start, "
            "end, duration, gpus, cpus (e.g. --job-columns submit=…,start=…,end=…,duration=…,"
            "gpus=…,cpus=…)",
        ),
        (
            ["--jobs", gaia, "--carbon", lwa, "--carbon-tz", "Mars/Olympus"],
            "--carbon-tz: unknown time zone 'Mars/Olympus': expected an IANA name "
            "(Europe/Berlin), UTC or an offset (+02:00)",
        ),
        (
            ["--jobs", gaia, "--carbon", lwa, "--cycle-s", "1000"],
            "--cycle-s: the planning interval (1000 s) must be a multiple of the 900 s grid step",
        ),
    ]
    for args, message in cases:
        code, stdout, stderr = _run(*args, "--json", "--no-progress")
        assert code == 2, (args, stderr)
        assert stdout == ""
        assert stderr.splitlines() == [f"greenlight: error: {message}"]


def test_a_typer_usage_error_also_exits_2(carbon: tuple[Path, Path], tmp_path: Path) -> None:
    code, _, stderr = _run(
        "--jobs", str(_gaia(tmp_path)), "--carbon", str(carbon[0]), "--carbon-unit", "t/GWh"
    )
    assert code == 2
    assert "'t/GWh' is not one of 'g/kWh', 'lbs/MWh', 'kg/MWh'" in stderr


def test_a_run_that_fails_after_its_input_was_accepted_exits_1(
    carbon: tuple[Path, Path], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    (out / "simulation.csv").mkdir(parents=True)  # the table cannot be written there
    code, stdout, stderr = _run(
        "--jobs", str(_gaia(tmp_path)), "--carbon", str(carbon[0]), "--policy", "now",
        "--out", str(out), "--no-progress",
    )  # fmt: skip
    assert code == 1
    assert stdout == ""
    lines = stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("greenlight: error: simulation failed: ")
    assert str(out / "simulation.csv") in lines[0]


def test_help_fits_80_columns_with_every_option_name_whole() -> None:
    result = CliRunner().invoke(app, ["simulate", "--help"], env={"COLUMNS": "80"})
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    for name in (
        "--forecast-error",
        "--optimum-max-nonzeros",
        "--optimum-time-limit",
        "--optimum-max-jobs",
        "--every-cycle / --no-every-cycle",
        "--job-columns MAP",
        "--carbon-columns MAP",
        "--carbon-unit <g/kWh|lbs/MWh|kg/MWh>",
        "--carbon-tz ZONE",
        "--from DATE",
        "--to DATE",
        "--start-offset DURATION",
        "--align-year",
        "--cpu-capacity",
    ):
        assert any(line.lstrip().startswith(name) for line in lines), name
    assert "…" not in result.stdout
