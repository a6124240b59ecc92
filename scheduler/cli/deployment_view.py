"""``greenlight show`` rows of a deployment: where it answers, a move in flight, past moves."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.table import Table

from scheduler.cli.render import console, fmt_num, fmt_time, text


def deployment_rows(job: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Key/value rows for a deployment's endpoint and moves (none for a training job)."""
    if job.get("kind") != "deployment":
        return []
    rows = [("endpoint", text(job.get("endpoint") or "(not reported yet)"))]
    if job.get("relocating_to"):
        rows.append(("relocating_to", text(job["relocating_to"])))
    for i, moved in enumerate(job.get("relocations") or (), start=1):
        rows.append(
            (
                f"relocation.{i}",
                f"{text(moved['from_region'])} -> {text(moved['to_region'])} at "
                f"{fmt_time(moved['switched_at'])}, expected saving "
                f"{fmt_num(moved['expected_saving_g'])} g "
                f"({moved['expected_saving_pct']:.1f} %)",
            )
        )
    return rows


def print_deployment(job: Mapping[str, Any]) -> None:
    """The rows above as a key/value table under the job's (nothing for a training job)."""
    rows = deployment_rows(job)
    if not rows:
        return
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for key, value in rows:
        table.add_row(key, value)
    console().print(table)
