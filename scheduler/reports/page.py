"""The savings report as one self-contained HTML page: inline CSS, inline SVG, no scripts.

The page loads nothing from the network (its Content-Security-Policy forbids it) so it can be
mailed or archived as one file. Every user-supplied string is escaped.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from html import escape

from scheduler.reports.charts import BarSeries, bar_chart_svg
from scheduler.reports.formats import (
    detail_cells,
    fmt_filters,
    fmt_g,
    fmt_kwh,
    fmt_moves,
    fmt_pct,
    fmt_per_r,
    fmt_s,
    fmt_time,
)
from scheduler.reports.groups import group_to_dict
from scheduler.reports.packing_credit import describe
from scheduler.reports.savings import GroupSavings, JobSavings, SavingsReport

_EMISSIONS_FILL = "#d9822b"
_BASELINE_FILL = "#8a9ba8"
_SAVED_FILL = "#2e8b57"
_WORSE_FILL = "#c23030"

_CSS = """
body { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto;
       max-width: 1200px; padding: 0 1rem; color: #1c2127; background: #fff; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; } h2 { font-size: 1.15rem; margin-top: 2rem; }
.meta { color: #5f6b7c; margin-top: 0; }
.cards { display: flex; flex-wrap: wrap; gap: .8rem; margin: 1rem 0; }
.card { border: 1px solid #d3d8de; border-radius: 6px; padding: .6rem 1rem; min-width: 9rem; }
.card .label { color: #5f6b7c; font-size: .8rem; text-transform: uppercase; }
.card .value { font-size: 1.3rem; font-variant-numeric: tabular-nums; }
.saved .value { color: #2e8b57; } .worse .value { color: #c23030; }
.charts { display: flex; flex-wrap: wrap; gap: 1rem; align-items: flex-start; }
svg.chart { max-width: 100%; height: auto; border: 1px solid #e5e8eb; border-radius: 6px; }
svg.chart text { font-size: 14px; fill: #404854; }
svg.chart .title { font-size: 16px; font-weight: 600; }
.scroll { overflow-x: auto; max-width: 100%; }
.scroll table { width: auto; min-width: 100%; }
td.when, td.id { white-space: nowrap; }
table.jobs { font-size: 13px; }
table.jobs th, table.jobs td { padding: .3rem .3rem; white-space: nowrap; }
table.jobs td.txt { max-width: 6.5rem; overflow: hidden; text-overflow: ellipsis; }
svg.chart .grid { stroke: #e5e8eb; } svg.chart .zero { stroke: #404854; }
table { border-collapse: collapse; width: 100%; margin: .5rem 0 1rem; }
th, td { padding: .3rem .5rem; border-bottom: 1px solid #e5e8eb; text-align: left; }
th { background: #f6f7f9; font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.total td { font-weight: 600; border-top: 2px solid #404854; }
.flag { color: #c87619; }
footer { color: #5f6b7c; font-size: .85rem; margin-top: 2rem; }
"""

_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


def _short_time(when: datetime) -> str:
    """``05-01 12:00`` (UTC): the year and seconds are in the cell's tooltip."""
    return when.astimezone(UTC).strftime("%m-%d %H:%M")


def _short_id(job_id: str) -> str:
    """The first 8 characters of a long id (the whole id is in the tooltip)."""
    return job_id if len(job_id) <= 12 else job_id[:8] + "\N{HORIZONTAL ELLIPSIS}"


def _cell(text: str, *, num: bool = False, title: str | None = None, css: str | None = None) -> str:
    classes = " ".join(c for c in ("num" if num else None, css) if c)
    attrs = f' class="{classes}"' if classes else ""
    if title is not None:
        attrs += f' title="{escape(title)}"'
    return f"<td{attrs}>{escape(text)}</td>"


def _head(names: Sequence[str], numeric: range) -> str:
    num = ' class="num"'
    cells = "".join(
        f"<th{num if i in numeric else ''}>{escape(n)}</th>" for i, n in enumerate(names)
    )
    return f"<thead><tr>{cells}</tr></thead>"


def _card(label: str, value: str, css: str = "") -> str:
    return (
        f'<div class="card {css}"><div class="label">{escape(label)}</div>'
        f'<div class="value">{escape(value)}</div></div>'
    )


def _cards(total: GroupSavings) -> str:
    saved_css = "saved" if total.saved_g >= 0 else "worse"
    return (
        '<section class="cards">'
        + "".join(
            [
                _card("Jobs", str(total.jobs)),
                _card("Energy (kWh)", fmt_kwh(total.energy_kwh)),
                _card("Emissions (g CO2e)", fmt_g(total.emissions_g)),
                _card("Baseline (g CO2e)", fmt_g(total.baseline_g)),
                _card("Saved (g CO2e)", fmt_g(total.saved_g), saved_css),
                _card("Saved (%)", fmt_pct(total.saved_pct), saved_css),
            ]
            + (
                [
                    _card(
                        "Relocations",
                        fmt_moves(total.relocations, total.relocation_expected_saving_g),
                    )
                ]
                if total.relocations
                else []
            )
        )
        + "</section>"
    )


def _versus_chart(title: str, groups: Sequence[GroupSavings]) -> str:
    return bar_chart_svg(
        title=title,
        categories=[g.key for g in groups],
        series=[
            BarSeries("emissions", tuple(g.emissions_g for g in groups), _EMISSIONS_FILL),
            BarSeries("baseline", tuple(g.baseline_g for g in groups), _BASELINE_FILL),
        ],
        unit="g CO2e",
    )


def _charts(report: SavingsReport) -> str:
    saved = bar_chart_svg(
        title=f"Saved per {report.period}",
        categories=[g.key for g in report.by_period],
        series=[
            BarSeries("saved", tuple(g.saved_g for g in report.by_period), _SAVED_FILL, _WORSE_FILL)
        ],
        unit="g CO2e",
    )
    return (
        '<section class="charts">'
        + _versus_chart("Emissions vs baseline by region", report.by_region)
        + _versus_chart("Emissions vs baseline by tenant", report.by_tenant)
        + saved
        + "</section>"
    )


_DETAIL_TITLES = (
    "Jobs",
    "Measured (kWh)",
    "Estimated (kWh)",
    "Operational",
    "Embodied",
    "Units (R)",
    "SCI per R",
    "Relocations",
    "Expected saving of moves",
    "Mean delay",
    "p95 delay",
    "Deadline misses",
    "Moved in time",
    "Moved in space",
)


def _detail_table(report: SavingsReport) -> str:
    """Accounting per ``group_by`` group (or the total alone), then the total row."""
    rows = "".join(
        f'<tr class="{css}">'
        + _cell(g.key)
        + "".join(_cell(c, num=True) for c in detail_cells(group_to_dict(g)))
        + "</tr>"
        for g, css in [*((g, "") for g in report.groups), (report.total, "total")]
    )
    head = _head(["Group", *_DETAIL_TITLES], numeric=range(1, len(_DETAIL_TITLES) + 1))
    title = f"Accounting by {report.group_by}" if report.group_by else "Accounting"
    return (
        f'<h2>{escape(title)}</h2><div class="scroll"><table>{head}'
        f"<tbody>{rows}</tbody></table></div>"
    )


def _group_row(group: GroupSavings, css: str = "") -> str:
    return (
        f'<tr class="{css}">'
        + "".join(
            [
                _cell(group.key),
                _cell(str(group.jobs), num=True),
                _cell(fmt_kwh(group.energy_kwh), num=True),
                _cell(fmt_g(group.emissions_g), num=True),
                _cell(fmt_g(group.baseline_g), num=True),
                _cell(fmt_g(group.saved_g), num=True),
                _cell(fmt_pct(group.saved_pct), num=True),
            ]
        )
        + "</tr>"
    )


def _group_table(title: str, groups: Sequence[GroupSavings], total: GroupSavings) -> str:
    head = _head(
        [title, "Jobs", "Energy (kWh)", "Emissions (g)", "Baseline (g)", "Saved (g)", "Saved (%)"],
        numeric=range(1, 7),
    )
    rows = "".join(_group_row(g) for g in groups) + _group_row(total, "total")
    return (
        f'<h2>By {escape(title.lower())}</h2><div class="scroll"><table>{head}'
        f"<tbody>{rows}</tbody></table></div>"
    )


def _job_row(job: JobSavings) -> str:
    energy = fmt_kwh(job.energy_kwh) + (" *" if job.energy_estimated else "")
    source_css = "" if job.intensity_source == "actual" else ' class="flag"'
    return (
        "<tr>"
        + "".join(
            [
                _cell(_short_id(job.job_id), css="id", title=job.job_id),
                _cell(job.tenant, css="txt", title=job.tenant),
                _cell(job.name, css="txt", title=job.name),
                _cell(job.state.value),
                _cell(job.region),
                _cell(job.home_region),
                _cell(_short_time(job.submitted_at), css="when", title=fmt_time(job.submitted_at)),
                _cell(_short_time(job.started_at), css="when", title=fmt_time(job.started_at)),
                _cell(fmt_s(job.delay_s), num=True),
                _cell(energy, num=True, title="estimated energy" if job.energy_estimated else None),
                _cell(fmt_g(job.emissions_g), num=True),
                _cell(fmt_g(job.baseline_g), num=True),
                _cell(fmt_g(job.saved_g), num=True),
                _cell(fmt_pct(job.saved_pct), num=True),
                _cell(fmt_per_r(job.sci_g_per_r, job.functional_unit), num=True),
                _cell(
                    fmt_moves(job.relocations, job.relocation_expected_saving_g),
                    num=True,
                    title="completed moves (expected saving of them)" if job.relocations else None,
                ),
                f"<td{source_css}>{escape(job.intensity_source)}</td>",
            ]
        )
        + "</tr>"
    )


def _job_table(jobs: Sequence[JobSavings]) -> str:
    head = _head(
        [
            "Job",
            "Tenant",
            "Name",
            "State",
            "Region",
            "Home",
            "Submitted",
            "Started",
            "Delay (s)",
            "kWh",
            "Emitted (g)",
            "Baseline (g)",
            "Saved (g)",
            "Saved",
            "SCI per R",
            "Moves",
            "Source",
        ],
        numeric=range(8, 16),
    )
    rows = "".join(_job_row(j) for j in jobs)
    if not jobs:
        rows = '<tr><td colspan="17">No job with energy reports in this range.</td></tr>'
    # Wide: it scrolls inside its own box rather than push the page past the window.
    return (
        f'<h2>Jobs</h2><div class="scroll"><table class="jobs">{head}'
        f"<tbody>{rows}</tbody></table></div>"
    )


def _skipped(report: SavingsReport) -> str:
    if not report.skipped:
        return ""
    items = "".join(
        f"<li><code>{escape(s.job_id)}</code>: {escape(s.reason)}</li>" for s in report.skipped
    )
    return f"<h2>Not priced</h2><ul>{items}</ul>"


_FOOTER = (
    "<footer><p>Emissions: measured energy &times; the region's PUE &times; the grid's actual "
    "carbon intensity over the real run interval. Baseline: the same energy profile started "
    "at submit time in the job's home region. Saved = baseline &minus; emissions. "
    "Times are UTC (the full time is in each cell's tooltip). "
    "Energy marked * is estimated from configured power, not measured. Intensity "
    "<em>forecast</em> or <em>extrapolated</em> marks figures priced where actuals were "
    "missing. Moves: a relocated deployment's completed moves and the saving they were "
    "expected to make when decided; its emissions price each copy in the region it ran in.</p>"
    "</footer>"
)


def report_to_html(report: SavingsReport) -> str:
    """A complete HTML document for ``report``; safe to serve as ``text/html`` as is."""
    f = report.filters
    span = fmt_filters(
        report.start, report.end, tenant=f.tenant, region=f.region, group_id=f.group_id
    )
    return "".join(
        [
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">',
            f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            "<title>Greenlight carbon savings</title>",
            f"<style>{_CSS}</style></head><body>",
            "<h1>Carbon savings</h1>",
            f'<p class="meta">Generated {escape(fmt_time(report.generated_at))} UTC; '
            f"{escape(span)}; grouped by {escape(report.period)}.</p>",
            _cards(report.total),
            f'<p class="meta">{escape(describe(report.packing))}.</p>' if report.packing else "",
            _charts(report),
            _detail_table(report),
            _group_table("Region", report.by_region, report.total),
            _group_table("Tenant", report.by_tenant, report.total),
            _group_table(report.period.capitalize(), report.by_period, report.total),
            _job_table(report.jobs),
            _skipped(report),
            _FOOTER,
            "</body></html>\n",
        ]
    )
