"""Filters shown in every format, and masses printed with sensible precision."""

from __future__ import annotations

import csv
import io
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from scheduler.cli.admin import report_time
from scheduler.cli.errors import CliError
from scheduler.reports import report_to_csv, report_to_dict, report_to_html, report_to_text
from scheduler.reports.formats import fmt_filters, fmt_g, fmt_mass
from scheduler.reports.savings import ReportFilters, SavingsReport
from tests.unit.test_reports import HOUR, T0, build, energy, make_job, series


@pytest.mark.parametrize(
    ("grams", "shown"),
    [
        (0.0, "0 g"),
        (0.0871, "87.1 mg"),
        (-0.0123, "-12.3 mg"),
        (0.0000456, "0.0456 mg"),
        (3.4219, "3.42 g"),
        (412.46, "412.5 g"),
        (12_345.0, "12.3 kg"),
    ],
)
def test_masses_never_round_to_zero(grams: float, shown: str) -> None:
    assert fmt_mass(grams) == shown


@pytest.mark.parametrize(
    ("grams", "shown"),
    [
        (0.0, "0.000"),
        (0.0871, "0.0871"),
        (-0.0123, "-0.0123"),
        (0.0000456, "0.0000456"),
        (3.4219, "3.422"),
        (12_345.678, "12,345.678"),
    ],
)
def test_gram_columns_keep_small_masses(grams: float, shown: str) -> None:
    assert fmt_g(grams) == shown


def test_filters_in_words() -> None:
    assert fmt_filters(None, None) == "all jobs"
    assert fmt_filters(None, None, region="eu-west") == "region eu-west"
    words = fmt_filters(T0, None, tenant="acme", group_id="sweep-1")
    assert words == "tenant acme, array sweep-1, jobs started from 2024-05-01 00:00:00 UTC"


@pytest.fixture
def filtered() -> SavingsReport:
    job = make_job("j1", finished_at=T0 + HOUR)
    report = build(
        [job],
        [energy("j1", T0, T0 + HOUR, 0.0005)],
        actuals=[series("H", T0, [200.0, 200.0])],
        start=T0 - HOUR,
    )
    return replace(report, filters=ReportFilters(tenant="acme", region="home", group_id="g-7"))


def test_every_format_shows_every_filter(filtered: SavingsReport) -> None:
    assert report_to_dict(filtered)["filters"] == {
        "tenant": "acme",
        "region": "home",
        "group_id": "g-7",
        "from": "2024-04-30T23:00:00Z",
        "to": None,
    }
    text = report_to_text(filtered)
    assert "Covers tenant acme, region home, array g-7, jobs started from 2024-04-30 23:00:00" in (
        text
    )
    assert "all jobs" not in text
    page = report_to_html(filtered)
    assert "tenant acme, region home, array g-7, jobs started from" in page
    assert "all jobs" not in page
    rows = list(csv.DictReader(io.StringIO(report_to_csv(filtered))))
    assert {row["filters"] for row in rows} == {
        "tenant=acme;region=home;group_id=g-7;from=2024-04-30T23:00:00Z"
    }


def test_text_total_prints_milligrams(filtered: SavingsReport) -> None:
    # 0.0005 kWh x 200 g/kWh = 0.1 g: printed as 100.0 mg, never "0.1 g ... saved 0.0 g".
    text = report_to_text(filtered)
    assert "emissions 100.0 mg, baseline 100.0 mg, saved 0 g" in text


NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("now", NOW),
        ("-7d", NOW - timedelta(days=7)),
        ("-12h", NOW - timedelta(hours=12)),
        ("-30m", NOW - timedelta(minutes=30)),
        ("-2w", NOW - timedelta(weeks=2)),
        ("2024-05-01", datetime(2024, 5, 1, tzinfo=UTC)),
        ("2024-05-01T12:00Z", datetime(2024, 5, 1, 12, tzinfo=UTC)),
        ("2024-05-01T14:00+02:00", datetime(2024, 5, 1, 12, tzinfo=UTC)),
    ],
)
def test_report_times_relative_and_iso(given: str, expected: datetime) -> None:
    got = report_time(given, NOW, option="--from")
    assert got is not None
    assert datetime.fromisoformat(got) == expected


def test_a_bad_report_time_is_a_usage_error() -> None:
    with pytest.raises(CliError, match="use now, -7d") as raised:
        report_time("last tuesday", NOW, option="--from")
    assert raised.value.exit_code == 2
