"""``greenlight simulate`` on real traces from ``shared/data``, in-process through CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from scheduler.cli.main import app
from tests.shared_data import SHARED_DATA, requires_shared_data

DATA = SHARED_DATA
CARBON = DATA / "carbon" / "lets-wait-awhile"
PHILLY = DATA / "jobs" / "pollux_philly" / "philly.csv"

pytestmark = requires_shared_data


@pytest.fixture
def small_trace(tmp_path: Path) -> Path:
    """The first 40 jobs of the Philly trace."""
    lines = PHILLY.read_text(encoding="utf-8").splitlines()[:41]
    path = tmp_path / "jobs.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_simulate_compares_policies_and_writes_files(small_trace: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = [
        "simulate",
        "--jobs",
        str(small_trace),
        "--carbon",
        str(CARBON / "ger_ci.csv"),
        "--carbon",
        str(CARBON / "fr_ci.csv"),
        "--region",
        "de",
        "--region",
        "fr",
        "--policy",
        "carbon-time",
        "--max-jobs",
        "20",
        "--out",
        str(out),
        "--json",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.stderr
    body = json.loads(result.stdout)
    assert body["regions"] == ["de", "fr"]
    labels = [row["label"] for row in body["rows"]]
    assert labels[:2] == ["now", "carbon-time"]
    now, shifted = body["rows"][0], body["rows"][1]
    assert now["jobs"] == shifted["jobs"] == body["jobs"] == 20
    assert shifted["deadline_misses"] == 0
    assert (out / "simulation.csv").exists()
    assert (out / "simulation.png").stat().st_size > 0
    table = CliRunner().invoke(app, args[:-1], env={"COLUMNS": "200"})
    assert table.exit_code == 0, table.stderr
    assert "carbon-time" in table.stdout
    assert f"wrote {out / 'simulation.csv'}" in table.stdout


def test_simulate_with_a_missing_trace_is_bad_input_in_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["simulate", "--jobs", str(tmp_path / "none.csv"), "--carbon", str(CARBON / "ger_ci.csv")],
    )
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert lines == [f"greenlight: error: {tmp_path / 'none.csv'}: no such job trace file"]


EM_UMASS = DATA / "carbon" / "electricitymaps-portal_umassos-decarbonization-potential"
EM_POLIMI = DATA / "carbon" / "electricitymaps-portal_polimi-carbonbudget"


@pytest.mark.parametrize(
    ("jobs", "carbon"),
    [
        (DATA / "jobs" / "gaia" / "azure-100k.csv", [CARBON / "ger_ci.csv", CARBON / "fr_ci.csv"]),
        (
            DATA / "jobs" / "alibaba_cluster-trace-gpu-v2023" / "openb_pod_list_default.csv",
            [EM_UMASS / "ES_2023_hourly.csv", EM_UMASS / "US-CAL-CISO_2023_hourly.csv"],
        ),
        (PHILLY, [EM_POLIMI / "DE_2022_hourly.csv", EM_UMASS / "ES_2022_hourly.csv"]),
    ],
    ids=["gaia-lets-wait-awhile", "alibaba-electricitymaps", "philly-electricitymaps"],
)
def test_every_shared_trace_format_loads_directly(jobs: Path, carbon: list[Path]) -> None:
    args = ["simulate", "--jobs", str(jobs), "--capacity", "8", "--max-jobs", "10"]
    for path in carbon:
        args += ["--carbon", str(path)]
    args += ["--policy", "greenlight", "--cycle-s", "3600", "--json", "--no-progress"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.stderr
    body = json.loads(result.stdout)
    assert len(body["regions"]) == len(carbon)
    assert body["jobs"] == 10
    assert [row["label"] for row in body["rows"]][:2] == ["now", "greenlight"]
    assert all(row["jobs"] == 10 for row in body["rows"])
