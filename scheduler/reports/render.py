"""Renderers for a ``SavingsReport``: JSON-ready dict, CSV, terminal text and an HTML page.

All are pure functions of the report. Units are in every key and column name.

Every format shows every filter the report was made with: JSON in its ``filters`` object, text
and HTML in their header, CSV in a last ``filters`` column, repeated on every row (so a row
copied elsewhere keeps its context, and the file stays one plain table that any CSV reader
parses): ``tenant=acme;region=eu-west;from=2024-05-01T00:00:00Z``, empty when unfiltered.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

from scheduler.reports.formats import (
    DETAIL_HEADERS,
    detail_cells,
    fmt_filters,
    fmt_g,
    fmt_kwh,
    fmt_mass,
    fmt_moves,
    fmt_pct,
    fmt_per_r,
    fmt_relocation_saving,
    fmt_s,
    fmt_time,
    iso_utc,
    printable,
)
from scheduler.reports.groups import group_to_dict
from scheduler.reports.packing_credit import PackingCredit, describe
from scheduler.reports.page import report_to_html
from scheduler.reports.savings import GroupSavings, JobSavings, SavingsReport

__all__ = [
    "CSV_COLUMNS",
    "report_to_csv",
    "report_to_dict",
    "report_to_html",
    "report_to_text",
]

CSV_COLUMNS = (
    "job_id",
    "tenant",
    "name",
    "state",
    "region",
    "home_region",
    "submitted_at",
    "started_at",
    "finished_at",
    "energy_kwh",
    "emissions_g",
    "baseline_g",
    "saved_g",
    "saved_pct",
    "delay_s",
    "energy_estimated",
    "intensity_source",
    "kind",
    "embodied_g",
    "functional_units",
    "functional_unit",
    "sci_g_per_r",
    "energy_kwh_per_1k_requests",
    "emissions_g_per_1k_requests",
    "relocations",
    "relocation_expected_saving_g",
    "filters",
)

_TOTAL_ROW_ID = "TOTAL"


def job_to_dict(job: JobSavings) -> dict[str, Any]:
    return {
        "job_id": job.job_id,
        "tenant": job.tenant,
        "name": job.name,
        "state": job.state.value,
        "region": job.region,
        "home_region": job.home_region,
        "submitted_at": iso_utc(job.submitted_at),
        "started_at": iso_utc(job.started_at),
        "finished_at": iso_utc(job.finished_at),
        "energy_kwh": job.energy_kwh,
        "emissions_g": job.emissions_g,
        "baseline_g": job.baseline_g,
        "saved_g": job.saved_g,
        "saved_pct": job.saved_pct,
        "delay_s": job.delay_s,
        "energy_estimated": job.energy_estimated,
        "intensity_source": job.intensity_source,
        "kind": job.kind,
        "embodied_g": job.embodied_g,
        "functional_units": job.functional_units,
        "functional_unit": job.functional_unit,
        "sci_g_per_r": job.sci_g_per_r,
        "energy_kwh_per_1k_requests": job.energy_kwh_per_1k_requests,
        "emissions_g_per_1k_requests": job.emissions_g_per_1k_requests,
        "relocations": job.relocations,
        "relocation_expected_saving_g": job.relocation_expected_saving_g,
    }


def filters_to_dict(report: SavingsReport) -> dict[str, str | None]:
    """Every filter of ``report``; None where it was not filtered on. ``to`` is exclusive."""
    return {
        "tenant": report.filters.tenant,
        "region": report.filters.region,
        "group_id": report.filters.group_id,
        "from": iso_utc(report.start),
        "to": iso_utc(report.end),
    }


def _filters_cell(report: SavingsReport) -> str:
    return ";".join(f"{k}={v}" for k, v in filters_to_dict(report).items() if v is not None)


def describe_filters(report: SavingsReport) -> str:
    """The report's filters in words (``all jobs`` when there are none)."""
    f = report.filters
    return fmt_filters(
        report.start, report.end, tenant=f.tenant, region=f.region, group_id=f.group_id
    )


def report_to_dict(report: SavingsReport) -> dict[str, Any]:
    """The report as plain JSON types: ISO-8601 UTC strings, floats at full precision, None."""
    return {
        "generated_at": iso_utc(report.generated_at),
        "start": iso_utc(report.start),
        "end": iso_utc(report.end),
        "filters": filters_to_dict(report),
        "period": report.period,
        "total": group_to_dict(report.total),
        "by_tenant": [group_to_dict(g) for g in report.by_tenant],
        "by_region": [group_to_dict(g) for g in report.by_region],
        "by_period": [group_to_dict(g) for g in report.by_period],
        "group_by": report.group_by,
        "groups": [group_to_dict(g) for g in report.groups],
        "jobs": [job_to_dict(j) for j in report.jobs],
        "skipped": [{"job_id": s.job_id, "reason": s.reason} for s in report.skipped],
        "packing": packing_to_dict(report.packing),
    }


def packing_to_dict(credit: PackingCredit | None) -> dict[str, Any] | None:
    """GPUs powered with and without packing, and the idle energy and grams it saved."""
    if credit is None:
        return None
    return {
        "deployments": credit.deployments,
        "gpu_h_packed": credit.gpu_h_packed,
        "gpu_h_unpacked": credit.gpu_h_unpacked,
        "gpu_h_saved": credit.gpu_h_saved,
        "peak_gpus_packed": credit.peak_gpus_packed,
        "peak_gpus_unpacked": credit.peak_gpus_unpacked,
        "idle_gpu_w": credit.idle_gpu_w,
        "idle_power_source": credit.idle_power_source,
        "energy_kwh": credit.energy_kwh,
        "emissions_g": credit.emissions_g,
    }


def _relocation_lines(total: GroupSavings) -> list[str]:
    if not total.relocations:
        return []
    return [
        f"Relocations: {total.relocations} completed moves of deployments, expected to save "
        f"{fmt_relocation_saving(total.relocation_expected_saving_g)} when decided"
    ]


def _packing_lines(credit: PackingCredit | None) -> list[str]:
    return [] if credit is None else [describe(credit), ""]


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)  # str(float) round-trips exactly


def report_to_csv(report: SavingsReport) -> str:
    """One row per job (columns ``CSV_COLUMNS``), then a ``TOTAL`` row with the sums.

    Empty cells stand for None. Floats are written at full precision, so sums re-parse exactly.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    filters = _filters_cell(report)
    for job in report.jobs:
        row = {**job_to_dict(job), "filters": filters}
        writer.writerow([_csv_cell(row[c]) for c in CSV_COLUMNS])
    total = report.total
    total_row: dict[str, Any] = {
        "job_id": _TOTAL_ROW_ID,
        "energy_kwh": total.energy_kwh,
        "emissions_g": total.emissions_g,
        "baseline_g": total.baseline_g,
        "saved_g": total.saved_g,
        "saved_pct": total.saved_pct,
        "energy_estimated": any(j.energy_estimated for j in report.jobs),
        "embodied_g": total.embodied_g,
        "functional_units": total.functional_units,
        "functional_unit": total.functional_unit,
        "sci_g_per_r": total.sci_g_per_r,
        "energy_kwh_per_1k_requests": total.energy_kwh_per_1k_requests,
        "emissions_g_per_1k_requests": total.emissions_g_per_1k_requests,
        "relocations": total.relocations,
        "relocation_expected_saving_g": total.relocation_expected_saving_g,
        "filters": filters,
    }
    writer.writerow([_csv_cell(total_row.get(c)) for c in CSV_COLUMNS])
    return buffer.getvalue()


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], numeric: set[int]) -> list[str]:
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]

    def line(cells: Sequence[str]) -> str:
        parts = [
            cell.rjust(w) if i in numeric else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    return [line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)]


_GROUP_HEADERS = ("jobs", "energy_kwh", "emissions_g", "baseline_g", "saved_g", "saved_pct")


def _group_cells(group: GroupSavings) -> list[str]:
    return [
        printable(group.key),
        str(group.jobs),
        fmt_kwh(group.energy_kwh),
        fmt_g(group.emissions_g),
        fmt_g(group.baseline_g),
        fmt_g(group.saved_g),
        fmt_pct(group.saved_pct),
    ]


def _group_table(title: str, groups: Sequence[GroupSavings]) -> list[str]:
    rows = [_group_cells(g) for g in groups]
    return [title, *_table((title.lower(), *_GROUP_HEADERS), rows, set(range(1, 7))), ""]


_JOB_HEADERS = (
    "job_id",
    "tenant",
    "name",
    "region",
    "home",
    "started (UTC)",
    "delay_s",
    "energy_kwh",
    "emissions_g",
    "baseline_g",
    "saved_g",
    "saved_pct",
    "sci_per_r",
    "moves",
    "source",
)


def _job_cells(job: JobSavings) -> list[str]:
    return [
        printable(job.job_id),
        printable(job.tenant),
        printable(job.name),
        printable(job.region),
        printable(job.home_region),
        fmt_time(job.started_at),
        fmt_s(job.delay_s),
        fmt_kwh(job.energy_kwh) + ("*" if job.energy_estimated else " "),
        fmt_g(job.emissions_g),
        fmt_g(job.baseline_g),
        fmt_g(job.saved_g),
        fmt_pct(job.saved_pct),
        fmt_per_r(job.sci_g_per_r, job.functional_unit),
        fmt_moves(job.relocations, job.relocation_expected_saving_g),
        job.intensity_source,
    ]


def _detail_table(report: SavingsReport) -> list[str]:
    """Accounting per group of ``group_by`` (or for the total), after its savings table."""
    lines = []
    if report.group_by is not None:
        lines += _group_table(f"By {report.group_by}", report.groups)
    groups = [*report.groups, report.total]
    rows = [[printable(g.key), *detail_cells(group_to_dict(g))] for g in groups]
    title = f"Accounting by {report.group_by}" if report.group_by else "Accounting"
    headers = ("group", *DETAIL_HEADERS)
    return [title, *_table(headers, rows, set(range(1, len(headers)))), ""]


def report_to_text(report: SavingsReport) -> str:
    """An aligned plain-text report for a terminal; control characters in names are replaced."""
    total = report.total
    lines = [
        f"Carbon savings report, generated {fmt_time(report.generated_at)} UTC",
        f"Covers {describe_filters(report)}, grouped by {report.period}",
        "",
        f"Total: {total.jobs} jobs, {fmt_kwh(total.energy_kwh)} kWh, "
        f"emissions {fmt_mass(total.emissions_g)}, baseline {fmt_mass(total.baseline_g)}, "
        f"saved {fmt_mass(total.saved_g)} ({fmt_pct(total.saved_pct)})",
        *_relocation_lines(total),
        "" if report.jobs else "No job with energy reports in this range.\n",
        *_packing_lines(report.packing),
        *_detail_table(report),
        *_group_table("Tenant", report.by_tenant),
        *_group_table("Region", report.by_region),
        *_group_table(report.period.capitalize(), report.by_period),
        "Jobs",
        *_table(_JOB_HEADERS, [_job_cells(j) for j in report.jobs], set(range(6, 14))),
        "",
        "* energy estimated from configured power, not measured. source: intensity behind the"
        " figures (actual; forecast or extrapolated where actuals were missing)."
        " sci_per_r: (operational + embodied) per 1,000 steps or requests."
        " moves: a relocated deployment's completed moves (exp.: the saving they were expected"
        " to make); its emissions price each copy where it ran.",
    ]
    if report.skipped:
        lines += ["", "Not priced:"]
        lines += [f"  {printable(s.job_id)}: {printable(s.reason)}" for s in report.skipped]
    return "\n".join(lines) + "\n"
