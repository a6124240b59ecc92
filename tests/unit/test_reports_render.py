"""Renderers of the savings report: JSON dict, CSV, terminal text, HTML page and its SVG charts."""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
import re
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta

import pytest

from scheduler.domain import JobState, MeterMethod
from scheduler.reports import (
    SavingsReport,
    report_to_csv,
    report_to_dict,
    report_to_html,
    report_to_text,
)
from scheduler.reports.charts import BarSeries, bar_chart_svg, nice_ticks
from scheduler.reports.formats import fmt_g, fmt_kwh, fmt_mass
from scheduler.reports.render import CSV_COLUMNS
from tests.unit.test_reports import HOUR, T0, build, energy, make_job, region, series

EVIL_TENANT = "<script>alert('x')</script>"


@pytest.fixture
def report() -> SavingsReport:
    regions = {"home": region("home", "H", pue=1.2), "green": region("green", "G")}
    jobs = [
        make_job("j1", tenant="acme"),
        make_job("j2", tenant=EVIL_TENANT, ran_in="green", started_at=T0 + 2 * HOUR),
        make_job("j3", tenant="acme", state=JobState.RUNNING, started_at=T0 + 26 * HOUR),
        make_job("j4", home="missing"),
    ]
    reports = [
        energy("j1", T0, T0 + 2 * HOUR, 1.0),
        energy("j2", T0 + 2 * HOUR, T0 + 3 * HOUR, 2.0, method=MeterMethod.ESTIMATE),
        energy("j3", T0 + 26 * HOUR, T0 + 27 * HOUR, 0.5),
        energy("j4", T0, T0 + HOUR, 1.0),
    ]
    actuals = [
        series("H", T0, [100.0 + 10 * h for h in range(30)]),
        series("G", T0, [50.0] * 30),
    ]
    return build(jobs, reports, regions=regions, actuals=actuals)


def test_dict_is_json_ready_with_utc_iso_strings_and_unit_keys(report: SavingsReport) -> None:
    data = json.loads(json.dumps(report_to_dict(report)))
    assert data["generated_at"] == "2024-05-03T00:00:00Z"
    assert data["start"] is None
    assert data["period"] == "day"
    assert [j["job_id"] for j in data["jobs"]] == ["j1", "j2", "j3"]
    assert data["skipped"][0]["job_id"] == "j4"
    job = data["jobs"][1]
    assert job["started_at"] == "2024-05-01T02:00:00Z"
    assert datetime.fromisoformat(job["submitted_at"]) == T0
    assert job["delay_s"] == 7200.0
    assert job["energy_estimated"] is True
    assert data["jobs"][2]["finished_at"] is None
    assert data["jobs"][2]["state"] == "running"
    for key in ("energy_kwh", "emissions_g", "baseline_g", "saved_g", "saved_pct"):
        assert data["total"][key] == getattr(report.total, key)
    assert {g["key"] for g in data["by_region"]} == {"home", "green"}
    assert [g["key"] for g in data["by_period"]] == ["2024-05-01", "2024-05-02"]


def test_csv_parses_back_and_the_total_row_matches_the_job_rows(report: SavingsReport) -> None:
    rows = list(csv.DictReader(io.StringIO(report_to_csv(report))))
    assert tuple(rows[0]) == CSV_COLUMNS
    *job_rows, total = rows
    assert [r["job_id"] for r in job_rows] == ["j1", "j2", "j3"]
    assert total["job_id"] == "TOTAL"
    for column in ("energy_kwh", "emissions_g", "baseline_g", "saved_g"):
        job_sum = math.fsum(float(r[column]) for r in job_rows)
        assert float(total[column]) == pytest.approx(job_sum, rel=1e-12)
        assert float(total[column]) == getattr(report.total, column)
    assert job_rows[1]["tenant"] == EVIL_TENANT
    assert job_rows[2]["finished_at"] == ""
    assert job_rows[1]["energy_estimated"] == "true"
    assert float(job_rows[0]["emissions_g"]) == report.jobs[0].emissions_g


def test_text_is_an_aligned_table_with_the_figures(report: SavingsReport) -> None:
    text = report_to_text(report)
    assert fmt_mass(report.total.emissions_g) in text
    assert fmt_kwh(report.total.energy_kwh) in text
    lines = text.splitlines()
    header = next(line for line in lines if line.startswith("job_id"))
    end_col = header.index("emissions_g") + len("emissions_g")
    job_lines = [line for line in lines if line.startswith(("j1 ", "j2 ", "j3 "))]
    assert len(job_lines) == 3
    for line, job in zip(job_lines, report.jobs, strict=True):
        # Numbers are right-aligned under their header.
        assert line[:end_col].endswith(fmt_g(job.emissions_g))
    assert "Not priced:" in text
    assert "'missing'" in text


def test_text_replaces_control_characters_in_names() -> None:
    jobs = [make_job("j1", tenant="evil\x1b[2J")]
    report = build(jobs, [energy("j1", T0, T0 + HOUR, 1.0)], actuals=[series("H", T0, [1.0])])
    text = report_to_text(report)
    assert "\x1b" not in text
    assert "evil\N{REPLACEMENT CHARACTER}[2J" in text


def test_html_is_self_contained_escapes_names_and_shows_the_numbers(
    report: SavingsReport,
) -> None:
    page = report_to_html(report)
    assert page.startswith("<!DOCTYPE html>")
    assert "<script" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    for figure in (report.total.emissions_g, report.total.baseline_g, report.total.saved_g):
        assert fmt_g(figure) in page
    for job in report.jobs:
        assert fmt_g(job.emissions_g) in page
    # Nothing is fetched: the only URL is the SVG namespace.
    urls = set(re.findall(r"https?://[^\s\"'<>]+", page))
    assert urls == {"http://www.w3.org/2000/svg"}
    assert "default-src 'none'" in page
    svgs = re.findall(r"<svg.*?</svg>", page, flags=re.DOTALL)
    assert len(svgs) == 3
    titles = [ET.fromstring(svg).get("aria-label") for svg in svgs]
    assert titles == [
        "Emissions vs baseline by region",
        "Emissions vs baseline by tenant",
        "Saved per day",
    ]


def test_region_chart_has_one_bar_per_region_and_series_with_exact_tooltips(
    report: SavingsReport,
) -> None:
    page = report_to_html(report)
    svg = ET.fromstring(re.findall(r"<svg.*?</svg>", page, flags=re.DOTALL)[0])
    ns = "{http://www.w3.org/2000/svg}"
    tips = [t.text or "" for t in svg.iter(f"{ns}title")]
    for group in report.by_region:
        assert f"{group.key} \N{EM DASH} emissions: {group.emissions_g:,.3f} g CO2e" in tips
        assert f"{group.key} \N{EM DASH} baseline: {group.baseline_g:,.3f} g CO2e" in tips


def test_bar_heights_are_proportional_and_negative_bars_grow_down() -> None:
    svg = bar_chart_svg(
        title="t",
        categories=["up", "down"],
        series=[BarSeries("saved", (30.0, -10.0), "#0a0", "#a00")],
        unit="g",
    )
    ns = "{http://www.w3.org/2000/svg}"
    bars = [r for r in ET.fromstring(svg).iter(f"{ns}rect") if r.find(f"{ns}title") is not None]
    up, down = bars
    assert up.get("fill") == "#0a0"
    assert down.get("fill") == "#a00"
    up_h, down_h = float(up.get("height", "0")), float(down.get("height", "0"))
    assert up_h / down_h == pytest.approx(3.0, rel=0.02)
    # The negative bar starts where the positive one ends: the zero line.
    assert float(down.get("y", "0")) == pytest.approx(float(up.get("y", "0")) + up_h, abs=0.11)


def test_empty_chart_says_so_and_mismatched_series_are_refused() -> None:
    assert "no data" in bar_chart_svg(title="t", categories=[], series=[], unit="g")
    with pytest.raises(ValueError, match="one value per category"):
        bar_chart_svg(title="t", categories=["a"], series=[BarSeries("s", (), "#000")], unit="g")


@pytest.mark.parametrize(
    ("lo", "hi"), [(0.0, 1.0), (-3.0, 47.0), (0.0, 0.00013), (-1234.5, 0.0), (5.0, 9.0e6)]
)
def test_nice_ticks_cover_the_range_in_even_steps(lo: float, hi: float) -> None:
    ticks = nice_ticks(lo, hi)
    assert ticks[0] <= lo
    assert ticks[-1] >= hi
    assert 3 <= len(ticks) <= 12
    steps = {round(b - a, 12) for a, b in itertools.pairwise(ticks)}
    assert len({round(s / min(steps), 6) for s in steps}) == 1


def test_empty_report_renders_everywhere() -> None:
    report = build([], [])
    assert report_to_dict(report)["jobs"] == []
    assert report_to_csv(report).splitlines()[-1].startswith("TOTAL")
    assert "No job with energy reports" in report_to_text(report)
    assert "No job with energy reports" in report_to_html(report)
    assert report.generated_at == T0 + timedelta(days=2)


def test_text_and_html_state_the_range_covered() -> None:
    report = build([], [], start=T0 + HOUR, end=T0 + 3 * HOUR, period="week")
    expected = "jobs started from 2024-05-01 01:00:00 UTC to before 2024-05-01 03:00:00 UTC"
    assert expected in report_to_text(report)
    assert expected in report_to_html(report)
    assert "all jobs" in report_to_text(build([], []))


def test_wide_tables_scroll_in_their_own_box_and_cells_do_not_wrap(report: SavingsReport) -> None:
    page = report_to_html(report)
    assert '<div class="scroll"><table class="jobs">' in page
    assert ".scroll { overflow-x: auto;" in page
    assert "table.jobs th, table.jobs td { padding: .3rem .3rem; white-space: nowrap; }" in page
    assert "05-01 00:00" in page  # short dates; the full time is the cell's tooltip
    assert 'title="2024-05-01 00:00:00"' in page


def test_a_chart_is_as_wide_as_its_bars_need() -> None:
    def width(categories: int) -> float:
        svg = bar_chart_svg(
            title="t",
            categories=[f"c{i}" for i in range(categories)],
            series=[BarSeries("s", tuple(1.0 for _ in range(categories)), "#000")],
            unit="g",
        )
        return float(ET.fromstring(svg).get("width") or 0)

    assert width(1) == 380  # one bar: a small chart, not one bar in a wide empty frame
    assert width(3) == 538
    assert width(20) == 720
