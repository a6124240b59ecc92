"""The savings report as rich tables, from the API's JSON (``report_to_dict``'s shape)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.table import Table

from scheduler.cli.render import console, fmt_duration, fmt_num, fmt_time, text
from scheduler.reports.formats import (
    DETAIL_HEADERS,
    detail_cells,
    fmt_filters,
    fmt_mass,
    fmt_moves,
    fmt_per_r,
    parse_iso,
)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}%"


def _group_table(title: str, groups: Sequence[Mapping[str, Any]]) -> Table:
    table = Table(title=title, title_justify="left", header_style="bold")
    table.add_column(title.upper())
    for column in ("JOBS", "ENERGY_kWh", "EMISSIONS", "BASELINE", "SAVED", "SAVED_%"):
        table.add_column(column, justify="right")
    for g in groups:
        table.add_row(
            text(g["key"]),
            str(g["jobs"]),
            fmt_num(g["energy_kwh"], 4),
            fmt_mass(g["emissions_g"]),
            fmt_mass(g["baseline_g"]),
            fmt_mass(g["saved_g"]),
            _pct(g["saved_pct"]),
        )
    return table


def _detail_table(report: Mapping[str, Any]) -> Table:
    by = report.get("group_by")
    title = f"Accounting by {by}" if by else "Accounting"
    table = Table(title=title, title_justify="left", header_style="bold")
    table.add_column("GROUP")
    for column in DETAIL_HEADERS:
        table.add_column(column.upper(), justify="right")
    for g in [*report.get("groups", []), report["total"]]:
        table.add_row(text(g["key"]), *detail_cells(g))
    return table


def _jobs_table(jobs: Sequence[Mapping[str, Any]]) -> Table:
    table = Table(title="Jobs", title_justify="left", header_style="bold")
    for column in ("JOB", "NAME", "TENANT", "REGION", "HOME", "STARTED (UTC)"):
        table.add_column(column)
    for column in ("DELAY", "ENERGY_kWh", "EMISSIONS", "BASELINE", "SAVED", "SAVED_%", "SCI/R"):
        table.add_column(column, justify="right")
    table.add_column("MOVES", justify="right")
    table.add_column("SOURCE")
    for j in jobs:
        energy = fmt_num(j["energy_kwh"], 4) + ("*" if j["energy_estimated"] else "")
        table.add_row(
            text(j["job_id"]),
            text(j["name"]),
            text(j["tenant"]),
            text(j["region"]),
            text(j["home_region"]),
            fmt_time(j["started_at"]),
            fmt_duration(j["delay_s"]),
            energy,
            fmt_mass(j["emissions_g"]),
            fmt_mass(j["baseline_g"]),
            fmt_mass(j["saved_g"]),
            _pct(j["saved_pct"]),
            fmt_per_r(j.get("sci_g_per_r"), j.get("functional_unit")),
            fmt_moves(j.get("relocations") or 0, j.get("relocation_expected_saving_g")),
            text(j["intensity_source"]),
        )
    return table


def _deployment_lines(report: Mapping[str, Any]) -> list[str]:
    """Relocations and the packing credit, where the report has them (``.get``: an older API
    has neither)."""
    lines = []
    total = report["total"]
    if total.get("relocations"):
        lines.append(
            f"Relocations: {total['relocations']} completed moves, expected to save "
            f"{fmt_mass(total.get('relocation_expected_saving_g') or 0.0)} when decided"
        )
    packing = report.get("packing")
    if packing:
        grams = packing["emissions_g"]
        lines.append(
            f"Packing: {packing['deployments']} shared-GPU deployments powered "
            f"{packing['gpu_h_packed']:.1f} GPU-h (peak {packing['peak_gpus_packed']}) instead "
            f"of {packing['gpu_h_unpacked']:.1f} (peak {packing['peak_gpus_unpacked']}); idle "
            f"draw saved {fmt_num(packing['energy_kwh'], 4)} kWh, "
            f"{'unpriced' if grams is None else fmt_mass(grams)}"
        )
    return lines


def describe(report: Mapping[str, Any]) -> str:
    """Every filter of the report in words (``all jobs`` when unfiltered)."""
    f = report.get("filters") or {}
    return fmt_filters(
        parse_iso(f.get("from", report.get("start"))),
        parse_iso(f.get("to", report.get("end"))),
        tenant=f.get("tenant"),
        region=f.get("region"),
        group_id=f.get("group_id"),
    )


def print_report(report: Mapping[str, Any]) -> None:
    """Total first, then by tenant, region and period (or the one requested grouping), then
    every job."""
    out = console()
    total = report["total"]
    out.print(
        f"[bold]Carbon savings[/] (generated {fmt_time(report['generated_at'])}; "
        f"{text(describe(report))})",
        highlight=False,
    )
    out.print(
        f"Total: {total['jobs']} jobs, {fmt_num(total['energy_kwh'], 4)} kWh, emissions "
        f"{fmt_mass(total['emissions_g'])} vs baseline {fmt_mass(total['baseline_g'])}: "
        f"[bold green]saved {fmt_mass(total['saved_g'])} ({_pct(total['saved_pct'])})[/]",
        highlight=False,
    )
    for line in _deployment_lines(report):
        out.print(line, highlight=False)
    if not total["jobs"]:
        out.print("No finished or running job with energy reports in this range.")
        return
    if report.get("group_by"):
        out.print(_group_table(str(report["group_by"]).capitalize(), report["groups"]))
    if "measured_kwh" in total:  # an API older than the accounting figures has none
        out.print(_detail_table(report))
    out.print(_group_table("Tenant", report["by_tenant"]))
    out.print(_group_table("Region", report["by_region"]))
    out.print(_group_table(str(report["period"]).capitalize(), report["by_period"]))
    if report["jobs"]:
        out.print(_jobs_table(report["jobs"]))
    else:  # over EXACT_MAX_JOBS the API sums in SQL and lists no job
        out.print("(many jobs: totals only, no per-job rows)")
    out.print(
        "* energy estimated from configured power, not measured. SOURCE: the intensity "
        "behind the figures (actual; forecast or extrapolated where actuals were missing)."
    )
    for skipped in report.get("skipped", []):
        out.print(f"not priced: {text(skipped['job_id'])}: {text(skipped['reason'])}")
