"""``greenlight simulate``'s planning interval, progress and input errors, through CliRunner and
as a subprocess (on a pipe and on a terminal), on the shipped Philly slice and the packaged
Electricity Maps traces: nothing outside the repository."""

from __future__ import annotations

import csv
import json
import os
import pty
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

from scheduler.cli.main import app
from scheduler.forecasts.replay import TRACES_DIR
from scheduler.simulation.cli import SimulationOptions, run_simulation

REPO = Path(__file__).resolve().parents[2]
JOBS = REPO / "tests" / "data" / "philly_head.csv"
ES = TRACES_DIR / "ES_2023_hourly.csv"
DE = TRACES_DIR / "DE_2023_hourly.csv"
CAPACITY = 4
MAX_JOBS = 12
# Capacity-limited, small, and no exact optimum: a few seconds per run.
BASE = [
    "simulate",
    "--jobs",
    str(JOBS),
    "--carbon",
    str(ES),
    "--carbon",
    str(DE),
    "--capacity",
    str(CAPACITY),
    "--max-jobs",
    str(MAX_JOBS),
    "--optimum-max-jobs",
    "0",
]
POLICY_LABELS = ("now", "lowest-window", "carbon-time", "wait-awhile", "greenlight", "oracle")


def _wider_than_capacity() -> int:
    with JOBS.open(newline="", encoding="utf-8") as handle:
        return sum(1 for row in csv.DictReader(handle) if int(row["num_gpus"]) > CAPACITY)


def test_json_stays_clean_and_progress_goes_to_stderr_as_lines() -> None:
    result = CliRunner().invoke(app, [*BASE, "--cycle-s", "3600", "--json"])
    assert result.exit_code == 0, result.stderr
    body = json.loads(result.stdout)  # the whole of stdout is one JSON document
    assert body["cycle_s"] == 3600
    assert body["jobs"] == MAX_JOBS
    assert tuple(r["label"] for r in body["rows"]) == POLICY_LABELS
    wide = _wider_than_capacity()
    assert f"{wide} jobs ask for more than {CAPACITY} GPUs: left out" in body["notes"]
    lines = result.stderr.splitlines()
    assert all(line.startswith("simulate: ") for line in lines)
    for label in POLICY_LABELS:
        assert any(line.startswith(f"simulate: {label} 0/{MAX_JOBS} jobs") for line in lines)
        done = f"simulate: {label} {MAX_JOBS}/{MAX_JOBS} jobs (100%)"
        assert any(line.startswith(done) for line in lines)


def test_a_longer_planning_interval_plans_fewer_cycles_for_the_same_jobs() -> None:
    bodies = {}
    for cycle_s in (900, 3600):
        result = CliRunner().invoke(
            app, [*BASE, "--cycle-s", str(cycle_s), "--json", "--no-progress"]
        )
        assert result.exit_code == 0, result.stderr
        assert result.stderr == ""
        bodies[cycle_s] = {r["label"]: r for r in json.loads(result.stdout)["rows"]}
    for label in POLICY_LABELS:
        fine, coarse = bodies[900][label], bodies[3600][label]
        assert coarse["cycles"] <= fine["cycles"]
        assert coarse["jobs"] == fine["jobs"] == MAX_JOBS
        # The grid runs to the traces' end: held-up jobs still finish, whatever the interval.
        assert coarse["unfinished"] == fine["unfinished"] == 0


def test_policies_replayed_in_parallel_give_the_same_results() -> None:
    outputs = []
    for workers in ("1", "2"):
        args = [*BASE, "--policy", "greenlight", "--policy", "wait-awhile", "--workers", workers]
        result = CliRunner().invoke(app, [*args, "--json"])
        assert result.exit_code == 0, result.stderr
        outputs.append(json.loads(result.stdout)["rows"])
        # Every policy's progress still ends at all jobs done.
        for label in ("now", "greenlight", "wait-awhile"):
            assert f"simulate: {label} {MAX_JOBS}/{MAX_JOBS} jobs (100%)" in result.stderr
    assert outputs[0] == outputs[1]


def test_the_exact_optimum_is_left_out_with_a_note_when_its_mip_would_be_too_big() -> None:
    labels = {}
    for limit in (1, SimulationOptions().optimum_max_nonzeros):
        options = SimulationOptions(max_jobs=MAX_JOBS, cycle_s=3600, optimum_max_nonzeros=limit)
        result = run_simulation(
            JOBS, [ES, DE], policies=["now"], capacity=CAPACITY, options=options
        )
        labels[limit] = [row.label for row in result.rows]
        skipped = [n for n in result.notes if n.startswith("optimum skipped: its MIP would hold")]
        assert len(skipped) == (1 if limit == 1 else 0)
    assert labels[1] == ["now"]
    assert labels[SimulationOptions().optimum_max_nonzeros] == ["now", "optimum"]


def _garbled(tmp_path: Path) -> Path:
    path = tmp_path / "garbled.csv"
    path.write_bytes(bytes(range(256)) * 8)
    return path


def _unknown_columns(tmp_path: Path) -> Path:
    path = tmp_path / "columns.csv"
    path.write_text("when,how_long\n1,2\n", encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("missing-jobs", "none.csv"),
        ("garbled-jobs", "garbled.csv"),
        ("unknown-job-columns", "unrecognised job trace columns"),
        ("garbled-carbon", "garbled.csv"),
        ("unknown-policy", "'bogus' is not one of"),
        ("too-few-regions", "1 region name(s) for 2 carbon trace(s)"),
        ("same-zone-twice", "ES repeats"),
        ("odd-interval", "multiple of the 900 s grid step"),
    ],
)
def test_bad_input_exits_non_zero_with_one_line(tmp_path: Path, case: str, expected: str) -> None:
    jobs, carbon = str(JOBS), ["--carbon", str(ES), "--carbon", str(DE)]
    extra: list[str] = []
    if case == "missing-jobs":
        jobs = str(tmp_path / "none.csv")
    elif case == "garbled-jobs":
        jobs = str(_garbled(tmp_path))
    elif case == "unknown-job-columns":
        jobs = str(_unknown_columns(tmp_path))
    elif case == "garbled-carbon":
        carbon = ["--carbon", str(ES), "--carbon", str(_garbled(tmp_path))]
    elif case == "unknown-policy":
        extra = ["--policy", "bogus"]
    elif case == "too-few-regions":
        extra = ["--region", "es"]
    elif case == "same-zone-twice":
        carbon = ["--carbon", str(ES), "--carbon", str(ES)]
    elif case == "odd-interval":
        extra = ["--cycle-s", "1000"]
    result = CliRunner().invoke(
        app, ["simulate", "--jobs", jobs, *carbon, *extra, "--json", "--no-progress"]
    )
    assert result.exit_code != 0
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("greenlight: error: ")
    assert expected in lines[0]


def _command(*extra: str) -> list[str]:
    return [sys.executable, "-m", "scheduler.cli.main", *BASE, "--cycle-s", "3600", *extra]


def test_subprocess_on_a_pipe_prints_json_on_stdout_and_lines_on_stderr() -> None:
    done = subprocess.run(
        _command("--json"), cwd=REPO, capture_output=True, text=True, timeout=240, check=False
    )
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    assert body["jobs"] == MAX_JOBS
    lines = done.stderr.splitlines()
    assert lines
    assert all(line.startswith("simulate: ") for line in lines)


def test_subprocess_on_a_terminal_draws_bars_on_stderr_only() -> None:
    leader, follower = pty.openpty()
    drawn = bytearray()

    def drain() -> None:
        # Read the terminal while the command runs, so a full buffer never blocks it.
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the follower side closed: the command is done
                return
            if not chunk:
                return
            drawn.extend(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        done = subprocess.run(
            _command("--json"),
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=follower,
            env={**os.environ, "TERM": "xterm-256color", "COLUMNS": "120"},
            timeout=240,
            check=False,
        )
    finally:
        os.close(follower)
    reader.join(timeout=10)
    os.close(leader)
    assert done.returncode == 0
    assert json.loads(done.stdout)["jobs"] == MAX_JOBS
    screen = drawn.decode("utf-8", errors="replace")
    assert "\x1b[" in screen  # drawn, not printed as plain lines
    assert "simulate: " not in screen
    for label in POLICY_LABELS:
        assert label in screen
    assert f"{MAX_JOBS}/{MAX_JOBS}" in screen
