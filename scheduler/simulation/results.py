"""A simulation's results and their renderings: a text or rich table, a CSV and a PNG plot."""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from matplotlib.figure import Figure
from rich.table import Table

from scheduler.simulation.inputs import GPU, TraceInfo
from scheduler.simulation.metrics import PolicyMetrics

CSV_COLUMNS = (
    "policy",
    "jobs",
    "emissions_g",
    "saving_vs_now_pct",
    "share_of_optimum_pct",
    "mean_wait_s",
    "p95_wait_s",
    "deadline_misses",
    "unfinished",
    "gpu_utilisation",
    "late_reported",
    "cycles",
)
_HEADERS = (
    "policy",
    "emissions kg",
    "vs now %",
    "of optimum %",
    "mean wait h",
    "p95 wait h",
    "missed",
    "GPU util %",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class SimulationResult:
    """One simulated comparison. ``rows`` are in the order policies were given, the offline
    optimum (label ``optimum``) last when computed. ``dropped_jobs`` counts trace jobs left out
    (outside the carbon traces' span, past ``max_jobs``, or wider than a region). ``cycle_s`` is
    the planning interval. ``notes`` say what was approximated, chosen or skipped, ``warnings``
    what may surprise (an option that does not bind). ``resource`` is what the capacity
    counts (``GPU``, or ``CPU`` cores); ``traces`` the files read, job trace first."""

    rows: tuple[PolicyMetrics, ...]
    regions: tuple[str, ...]
    start: datetime
    end: datetime
    step_s: int
    forecast_error: float
    seed: int
    jobs: int
    dropped_jobs: int = 0
    notes: tuple[str, ...] = ()
    cycle_s: int | None = None
    csv_path: Path | None = None
    png_path: Path | None = None
    resource: str = GPU
    traces: tuple[TraceInfo, ...] = ()
    warnings: tuple[str, ...] = ()

    def row(self, label: str) -> PolicyMetrics:
        """The row for a policy value or ``optimum``; raises KeyError."""
        for row in self.rows:
            if row.label == label:
                return row
        raise KeyError(label)


def _pct(value: float | None) -> str:
    return "—" if value is None or math.isnan(value) else f"{value:.2f}"


def table_cells(row: PolicyMetrics) -> tuple[str, ...]:
    util = None if row.gpu_utilisation is None else row.gpu_utilisation * 100.0
    return (
        row.label,
        f"{row.emissions_g / 1000.0:,.1f}",
        _pct(row.saving_vs_now_pct),
        _pct(row.share_of_optimum_pct),
        f"{row.mean_wait_s / 3600.0:.2f}",
        f"{row.p95_wait_s / 3600.0:.2f}",
        str(row.deadline_misses),
        _pct(util),
    )


def _headers(resource: str) -> tuple[str, ...]:
    return (*_HEADERS[:-1], f"{resource} util %")


def header_lines(result: SimulationResult) -> list[str]:
    """One line per trace read: its role, file, detected format and what was read."""
    return [f"{t.role}: {t.path} [{t.format}] {t.detail}" for t in result.traces]


def format_table(rows: Sequence[PolicyMetrics], resource: str = GPU) -> str:
    """A plain-text table, one line per row, columns aligned."""
    lines = [_headers(resource), *(table_cells(r) for r in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(_HEADERS))]
    text = [
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(line, widths, strict=True))
        )
        for line in lines
    ]
    text.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(text)


def rich_table(result: SimulationResult) -> Table:
    """The results as a rich table (for the CLI)."""
    title = (
        f"{result.jobs} jobs, {', '.join(result.regions)}, "
        f"{result.start:%Y-%m-%d} to {result.end:%Y-%m-%d}, "
        f"forecast error {result.forecast_error * 100:g}%"
    )
    if result.cycle_s:
        title += f", planning every {result.cycle_s / 60:g} min"
    table = Table(title=title)
    for i, header in enumerate(_headers(result.resource)):
        table.add_column(header, justify="left" if i == 0 else "right")
    for row in result.rows:
        table.add_row(*table_cells(row))
    return table


def write_csv(rows: Sequence[PolicyMetrics], path: Path) -> Path:
    """One line per row with ``CSV_COLUMNS``; empty cells where a figure is undefined."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_COLUMNS)
        for r in rows:
            writer.writerow(
                [
                    r.label,
                    r.jobs,
                    f"{r.emissions_g:.3f}",
                    _csv(r.saving_vs_now_pct),
                    _csv(r.share_of_optimum_pct),
                    f"{r.mean_wait_s:.1f}",
                    f"{r.p95_wait_s:.1f}",
                    r.deadline_misses,
                    r.unfinished,
                    _csv(r.gpu_utilisation),
                    r.late_reported,
                    r.cycles,
                ]
            )
    return path


def _csv(value: float | None) -> str:
    return "" if value is None else f"{value:.6f}"


def write_plot(rows: Sequence[PolicyMetrics], path: Path, title: str = "") -> Path:
    """Two bar charts: emissions per policy (kg, saving vs now on each bar) and mean wait (h).

    Uses matplotlib's object API (the Agg canvas), never pyplot's global state.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    labels = [r.label for r in rows]
    fig = Figure(figsize=(max(6.0, 1.3 * len(rows) + 2.0), 6.5), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True)
    bars = top.bar(labels, [r.emissions_g / 1000.0 for r in rows], color="#3a7d44")
    top.bar_label(bars, labels=[_pct(r.saving_vs_now_pct) + " %" for r in rows], fontsize=8)
    top.set_ylabel("emissions (kg CO2e, actuals)")
    top.set_title(title or "Simulated emissions and waits per policy")
    bottom.bar(labels, [r.mean_wait_s / 3600.0 for r in rows], color="#5b7fa6")
    bottom.set_ylabel("mean wait (h)")
    bottom.tick_params(axis="x", labelrotation=20)
    fig.savefig(path, dpi=110)
    return path
