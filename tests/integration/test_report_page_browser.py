"""The HTML savings report in a real headless Chromium at 1280 px: the page does not run past
the window (wide tables scroll in their own box), and one-bar charts stay small.

The report page allows no scripts (its Content-Security-Policy). To measure its layout, the
test serves a copy whose policy admits one inline script that writes the measurements into
the DOM, then reads them from ``--dump-dom``; nothing else of the page changes. The screenshot
is kept as a test artifact.
"""

from __future__ import annotations

import os
import re
from dataclasses import replace
from pathlib import Path

import pytest

from scheduler.reports import report_to_html
from scheduler.reports.savings import ReportFilters
from tests.integration.test_dashboard import CHROMIUM, _chromium
from tests.unit.test_reports import HOUR, T0, build, energy, make_job, region, series

ARTIFACTS = Path(os.environ.get("GREENLIGHT_TEST_ARTIFACTS", "test-artifacts")) / "report"
_MEASURE = (
    "<script>addEventListener('load', () => {"
    "const d = document.documentElement;"
    "d.dataset.overflow = String(d.scrollWidth > innerWidth);"
    "d.dataset.charts = [...document.querySelectorAll('svg.chart')]"
    ".map(s => Math.round(s.getBoundingClientRect().width)).join(',');"
    "});</script>"
)


def _page() -> str:
    regions = {"home": region("home", "H", pue=1.2), "green": region("green", "G")}
    jobs, reports = [], []
    for i in range(6):
        job_id = f"0f3c9a7e-1b2d-4c5e-8f90-{i:012d}"
        jobs.append(
            make_job(
                job_id,
                started_at=T0 + i * HOUR,
                finished_at=T0 + (i + 1) * HOUR,
                ran_in="green",
                tenant="research-ml-platform-team",
            )
        )
        reports.append(energy(job_id, T0 + i * HOUR, T0 + (i + 1) * HOUR, 0.8 + i / 10))
    report = build(
        jobs,
        reports,
        regions=regions,
        actuals=[series("H", T0, [400.0] * 10), series("G", T0, [120.0] * 10)],
        group_by="region",
    )
    page = report_to_html(replace(report, filters=ReportFilters(region="green")))
    page = page.replace("default-src 'none';", "default-src 'none'; script-src 'unsafe-inline';")
    return page.replace("</body>", _MEASURE + "</body>")


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (.ci/run installs it)")
def test_report_page_fits_1280_px(tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    page.write_text(_page(), encoding="utf-8")
    out = ARTIFACTS.resolve()
    out.mkdir(parents=True, exist_ok=True)
    dom = _chromium(page.as_uri(), 1280, 900, out, "--dump-dom")
    assert 'data-overflow="false"' in dom, "the page runs past 1280 px"
    widths = re.search(r'data-charts="([\d,]+)"', dom)
    assert widths is not None
    # Three one-bar charts: 380 px and a 1 px border each, not 720 px of mostly nothing.
    assert [int(w) for w in widths.group(1).split(",")] == [382, 382, 382]
    assert "region green" in dom
    assert "all jobs" not in dom
    _chromium(page.as_uri(), 1280, 2000, out, f"--screenshot={out / 'report-1280.png'}")
    assert (out / "report-1280.png").stat().st_size > 0
