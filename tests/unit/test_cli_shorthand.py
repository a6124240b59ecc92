"""Durations and deadlines in the shorthand Ray and Slurm users type."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from scheduler.cli.errors import CliError
from scheduler.cli.shorthand import parse_deadline, parse_duration_s


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
