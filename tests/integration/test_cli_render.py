"""The CLI's pure pieces: the forecast sparkline and bucketing, job files, error lines; and the
command tree in-process through Typer's CliRunner."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from scheduler.cli.errors import CliError
from scheduler.cli.jobfile import load_job_file, merge_flags
from scheduler.cli.main import app
from scheduler.cli.render import fmt_duration, fmt_time
from scheduler.cli.sparkline import BLOCKS, bucketize, sparkline, window_marks

T0 = datetime(2024, 5, 1, tzinfo=UTC)


def test_sparkline_spans_lowest_to_highest_block_with_gaps() -> None:
    line = sparkline([100.0, 300.0, None, 200.0])
    assert line == f"{BLOCKS[0]}{BLOCKS[-1]} {BLOCKS[4]}"
    assert sparkline([5.0, 5.0]) == BLOCKS[0] * 2
    assert sparkline([None, None]) == "  "


def test_bucketize_time_weights_points_and_marks_the_window() -> None:
    points = [
        (T0 + timedelta(minutes=30 * i), float(v)) for i, v in enumerate([100, 200, 300, 400])
    ]
    buckets = bucketize(points, 1800, T0, T0 + timedelta(hours=3), 3)
    assert [b.mean_g_per_kwh for b in buckets] == [150.0, 350.0, None]
    marks = window_marks(buckets, T0 + timedelta(minutes=90), T0 + timedelta(minutes=120))
    assert marks == " ^"
    assert window_marks(buckets, None, None) == "   "


def test_times_print_as_utc_iso() -> None:
    assert fmt_time("2024-05-01T15:30:00+02:00") == "2024-05-01T13:30:00Z"
    assert fmt_time(None) == "-"
    assert fmt_duration(3900) == "1h05m"
    assert fmt_duration(42) == "42s"


def test_job_files_and_flag_merging(tmp_path: Path) -> None:
    path = tmp_path / "job.toml"
    path.write_text('name = "a"\ndeadline = 2024-05-01T18:00:00Z\n[resources]\ngpus = 1\n')
    loaded = load_job_file(path)
    assert loaded == {
        "name": "a",
        "deadline": "2024-05-01T18:00:00+00:00",
        "resources": {"gpus": 1},
    }
    merged = merge_flags(
        loaded, {"name": None, "resources": {"cpus": 2.0}, "priority": 3, "runtime_env": {}}
    )
    assert merged == {
        "name": "a",
        "deadline": "2024-05-01T18:00:00+00:00",
        "resources": {"gpus": 1, "cpus": 2.0},
        "priority": 3,
    }
    listing = tmp_path / "list.json"
    listing.write_text("[1, 2]")
    with pytest.raises(CliError, match="top level"):
        load_job_file(listing)


def test_help_lists_every_command() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in (
        "submit",
        "list",
        "show",
        "cancel",
        "logs",
        "events",
        "regions",
        "forecast",
        "report",
        "token",
        "db",
        "serve",
        "demo",
        "simulate",
    ):
        assert command in result.output


def test_in_process_errors_are_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["--url", "http://127.0.0.1:9", "show", "j-1"])
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        "greenlight: error: cannot reach the Greenlight API at http://127.0.0.1:9 (is "
        "`greenlight serve` running? set --url or GREENLIGHT_URL)"
    ]
