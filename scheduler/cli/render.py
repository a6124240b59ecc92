"""Terminal output: rich tables for people, plain JSON (``--json``) for scripts.

Times are printed as UTC ISO-8601 (``2024-05-01T13:00:00Z``); quantities carry their unit in
the column header.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

NONE = "-"
# Piped output has no terminal width; wide enough that ids and times are never cut.
_PIPE_WIDTH = 200


def console() -> Console:
    width = None if sys.stdout.isatty() or os.environ.get("COLUMNS") else _PIPE_WIDTH
    return Console(width=width, highlight=False, soft_wrap=False)


def print_json(data: Any) -> None:
    """The API's JSON as it came, indented: parseable by ``jq`` and ``json.loads``."""
    sys.stdout.write(json.dumps(data, indent=2) + "\n")


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def fmt_time(value: str | datetime | None) -> str:
    """``2024-05-01T13:00:00Z``, or ``-`` for none."""
    parsed = parse_time(value) if isinstance(value, str) else value
    if parsed is None:
        return NONE
    return parsed.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def fmt_num(value: float | None, digits: int = 1) -> str:
    return NONE if value is None else f"{value:,.{digits}f}"


def fmt_units(counted: Mapping[str, Any] | None) -> str:
    """``12,000 requests (attempt 2)``; ``-`` before the worker sent a count."""
    if not counted:
        return NONE
    units = counted["units"]
    shown = f"{units:,.0f}" if float(units).is_integer() else f"{units:,.2f}"
    return f"{shown} {text(counted['unit'])} (attempt {counted['attempt']})"


def fmt_duration(seconds: float | None) -> str:
    """``1h05m``, ``42s``: short and exact enough for a table."""
    if seconds is None:
        return NONE
    total = round(seconds)
    hours, rest = divmod(abs(total), 3600)
    minutes, secs = divmod(rest, 60)
    sign = "-" if total < 0 else ""
    if hours:
        return f"{sign}{hours}h{minutes:02d}m"
    return f"{sign}{minutes}m{secs:02d}s" if minutes else f"{sign}{secs}s"


def text(value: Any) -> str:
    """A cell: ``-`` for None, rich markup escaped so names like ``[x]`` print as typed."""
    return NONE if value is None or value == "" else escape(str(value))


def _table(*columns: str, title: str | None = None) -> Table:
    table = Table(title=title, title_justify="left", header_style="bold")
    for column in columns:
        numeric = column.endswith(("_g", "_s", "_kwh", "_pct", "g/kWh)")) or column in ("GPUS",)
        table.add_column(column, justify="right" if numeric else "left", overflow="fold")
    return table


def job_start(job: Mapping[str, Any]) -> str | None:
    """When it started, else when its plan starts."""
    plan = job.get("plan") or {}
    started: str | None = job.get("started_at") or plan.get("planned_start")
    return started


def print_jobs(page: Mapping[str, Any]) -> None:
    """A page of ``JobsPublic``, with a ``1-20 of 57`` footer."""
    jobs: Sequence[Mapping[str, Any]] = page["data"]
    table = _table(
        "ID",
        "NAME",
        "TENANT",
        "KIND",
        "STATE",
        "REGION",
        "START (UTC)",
        "DEADLINE (UTC)",
        "CREATED (UTC)",
    )
    for job in jobs:
        region = job.get("region") or (job.get("plan") or {}).get("region")
        table.add_row(
            text(job["id"]),
            text(job["name"]),
            text(job["tenant"]),
            job["kind"],
            job["state"],
            text(region),
            fmt_time(job_start(job)),
            fmt_time(job.get("deadline")),
            fmt_time(job["created_at"]),
        )
    out = console()
    out.print(table)
    offset, count = int(page["offset"]), int(page["count"])
    shown = f"{offset + 1}-{offset + len(jobs)}" if jobs else "none"
    out.print(f"{shown} of {count} jobs")


def print_job(job: Mapping[str, Any]) -> None:
    """One job as a key/value table, then its plan."""
    res = job["resources"]
    rows: list[tuple[str, str]] = [
        ("id", text(job["id"])),
        ("name", text(job["name"])),
        ("tenant", text(job["tenant"])),
        ("kind", job["kind"]),
        ("state", job["state"]),
        ("attempt", str(job["attempt"])),
        ("entrypoint", text(job["entrypoint"])),
        ("resources", f"{res['gpus']} GPU, {res['cpus']:g} CPU, {res['memory_mb']} MiB"),
        ("expected_duration", fmt_duration(job.get("expected_duration_s"))),
        ("deadline", fmt_time(job.get("deadline"))),
        ("max_delay", fmt_duration(job.get("max_delay_s"))),
        ("home_region", text(job["home_region"])),
        ("allowed_regions", text(", ".join(job["allowed_regions"]) or "all")),
        ("policy", job["policy"]),
        ("region", text(job.get("region"))),
        ("created", fmt_time(job["created_at"])),
        ("started", fmt_time(job.get("started_at"))),
        ("finished", fmt_time(job.get("finished_at"))),
        ("exit_code", text(job.get("exit_code"))),
        ("message", text(job.get("message"))),
        ("functional_units", fmt_units(job.get("functional_units"))),
    ]
    plan = job.get("plan")
    if plan:
        rows += [
            ("plan.region", text(plan["region"])),
            ("plan.start", fmt_time(plan["planned_start"])),
            ("plan.end", fmt_time(plan["planned_end"])),
            ("plan.forecast_emissions_g", fmt_num(plan["forecast_emissions_g"])),
            ("plan.baseline_emissions_g", fmt_num(plan["baseline_emissions_g"])),
            ("plan.expected_saving_g", fmt_num(plan["expected_saving_g"])),
            ("plan.forecast_issued_at", fmt_time(plan.get("forecast_issued_at"))),
            ("plan.note", text(plan.get("note"))),
        ]
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for key, value in rows:
        table.add_row(key, value)
    console().print(table)


def print_events(events: Sequence[Mapping[str, Any]]) -> None:
    table = _table("AT (UTC)", "KIND", "ACTOR", "TRANSITION", "REASON", "EXPECTED_g")
    for e in events:
        transition = ""
        if e.get("to_state"):
            transition = f"{e.get('from_state') or ''} -> {e['to_state']}".strip()
        table.add_row(
            fmt_time(e["at"]),
            e["kind"],
            text(e["actor"]),
            transition,
            text(e["reason"]),
            fmt_num(e.get("expected_emissions_g")),
        )
    console().print(table)


def print_regions(regions: Sequence[Mapping[str, Any]]) -> None:
    table = _table(
        "NAME",
        "ZONE",
        "PROVIDER",
        "GPUS",
        "PUE",
        "LAST REFRESH (UTC)",
        "HORIZON END (UTC)",
        "STALE",
        "LAST ERROR",
    )
    for r in regions:
        table.add_row(
            text(r["name"]),
            text(r["grid_zone"]),
            text(r["provider"]),
            str(r["gpus"]),
            f"{r['pue']:.2f}",
            fmt_time(r.get("last_refresh")),
            fmt_time(r.get("horizon_end")),
            "yes" if r["stale"] else "no",
            text(r.get("last_error")),
        )
    console().print(table)


def print_accuracy(accuracy: Mapping[str, Any]) -> None:
    table = _table(
        "LEAD", "LEAD_s", "MAE (g/kWh)", title=f"Forecast error for {accuracy['region']}"
    )
    for row in accuracy["data"]:
        table.add_row(
            fmt_duration(row["lead_s"]), f"{row['lead_s']:.0f}", fmt_num(row["mae_g_per_kwh"])
        )
    out = console()
    if not accuracy["data"]:
        out.print(
            f"No forecast error measured yet for {escape(accuracy['region'])}: it needs "
            "stored forecasts and the actuals that followed them."
        )
        return
    out.print(table)


def print_kv(title: str, rows: Mapping[str, str]) -> None:
    table = Table(title=title, title_justify="left", show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for key, value in rows.items():
        table.add_row(key, value)
    console().print(table)
