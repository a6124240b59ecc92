"""Durations and deadlines in the shorthand Ray and Slurm users type."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from scheduler.cli.errors import CliError
from scheduler.cli.shorthand import (
    load_runtime_env,
    parse_after,
    parse_deadline,
    parse_duration_s,
    shorthand_fields,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("3600", 3600),
        ("90m", 5400),
        ("2h", 7200),
        ("1h30m", 5400),
        ("1.5d", 129600),
        ("45s", 45),
        ("1w", 604800),
        ("01:30:00", 5400),
        ("30:00", 1800),
        ("2-00:00", 172800),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration_s(text) == seconds


@pytest.mark.parametrize("text", ["", "ninety", "2x", "h", "1:2:3:4"])
def test_bad_durations_say_what_is_accepted(text: str) -> None:
    with pytest.raises(CliError, match="90m"):
        parse_duration_s(text)


def test_relative_deadline_and_iso_passthrough() -> None:
    now = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
    assert parse_deadline("+6h", now) == "2026-12-06T18:00:00+00:00"
    assert parse_deadline("+90m", now) == "2026-12-06T13:30:00+00:00"
    assert parse_deadline("2026-12-07T00:00:00Z", now) == "2026-12-07T00:00:00Z"


def test_job_files_take_the_same_shorthands(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    job_file = tmp_path / "job.toml"
    payload = {
        "expected_duration_s": "1h30m",
        "max_delay_s": "6h",
        "deadline": "+2h",
        "runtime_env": {"working_dir": "src", "pip": ["numpy"]},
    }

    out = shorthand_fields(payload, job_file)

    assert out["expected_duration_s"] == 5400
    assert out["max_delay_s"] == 21600
    assert out["deadline"].endswith("+00:00")
    assert out["runtime_env"] == {
        "working_dir": str((tmp_path / "src").resolve()),
        "pip": ["numpy"],
    }


def test_runtime_env_files_and_after_values(tmp_path: Path) -> None:
    (tmp_path / "code").mkdir()
    renv = tmp_path / "env.yaml"
    renv.write_text("working_dir: code\nenv_vars:\n  A: '1'\npip: [requests]\n")

    assert load_runtime_env(renv) == {
        "working_dir": str((tmp_path / "code").resolve()),
        "env_vars": {"A": "1"},
        "pip": ["requests"],
    }
    assert parse_after(["j-1", "afterany:j-2", "afterok:j-3:j-4"]) == [
        {"job_id": "j-1", "kind": "afterok"},
        {"job_id": "j-2", "kind": "afterany"},
        {"job_id": "j-3", "kind": "afterok"},
        {"job_id": "j-4", "kind": "afterok"},
    ]
    with pytest.raises(CliError, match="afterany:JOB"):
        parse_after(["before:j-1"])
