"""The savings report as rich tables, from the API's JSON (``report_to_dict``'s shape)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.table import Table

from scheduler.cli.render import console, fmt_duration, fmt_num, fmt_time, text


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}%"


def _group_table(title: str, groups: Sequence[Mapping[str, Any]]) -> Table:
    table = Table(title=title, title_justify="left", header_style="bold")
    table.add_column(title.upper())
    for column in ("JOBS", "ENERGY_kWh", "EMISSIONS_g", "BASELINE_g", "SAVED_g", "SAVED_%"):
        table.add_column(column, justify="right")
    for g in groups:
        table.add_row(
            text(g["key"]),
            str(g["jobs"]),
            fmt_num(g["energy_kwh"], 4),
            fmt_num(g["emissions_g"]),
            fmt_num(g["baseline_g"]),
            fmt_num(g["saved_g"]),
            _pct(g["saved_pct"]),
        )
    return table


def _jobs_table(jobs: Sequence[Mapping[str, Any]]) -> Table:
    table = Table(title="Jobs", title_justify="left", header_style="bold")
    for column in ("JOB", "NAME", "TENANT", "REGION", "HOME", "STARTED (UTC)"):
        table.add_column(column)
    for column in ("DELAY", "ENERGY_kWh", "EMISSIONS_g", "BASELINE_g", "SAVED_g", "SAVED_%"):
        table.add_column(column, justify="right")
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
            fmt_num(j["emissions_g"]),
            fmt_num(j["baseline_g"]),
            fmt_num(j["saved_g"]),
            _pct(j["saved_pct"]),
            text(j["intensity_source"]),
        )
    return table


def print_report(report: Mapping[str, Any]) -> None:
    """Total first, then by tenant, region and period, then every job."""
    out = console()
    total = report["total"]
    out.print(
        f"[bold]Carbon savings[/] (generated {fmt_time(report['generated_at'])}; jobs "
        f"started {fmt_time(report['start'])} .. {fmt_time(report['end'])})"
    )
    out.print(
        f"Total: {total['jobs']} jobs, {fmt_num(total['energy_kwh'], 4)} kWh, emissions "
        f"{fmt_num(total['emissions_g'])} g vs baseline {fmt_num(total['baseline_g'])} g: "
        f"[bold green]saved {fmt_num(total['saved_g'])} g ({_pct(total['saved_pct'])})[/]"
    )
    if not report["jobs"]:
        out.print("No finished or running job with energy reports in this range.")
        return
    out.print(_group_table("Tenant", report["by_tenant"]))
    out.print(_group_table("Region", report["by_region"]))
    out.print(_group_table(str(report["period"]).capitalize(), report["by_period"]))
    out.print(_jobs_table(report["jobs"]))
    out.print(
        "* energy estimated from configured power, not measured. SOURCE: the intensity "
        "behind the figures (actual; forecast or extrapolated where actuals were missing)."
    )
    for skipped in report.get("skipped", []):
        out.print(f"not priced: {text(skipped['job_id'])}: {text(skipped['reason'])}")
