"""Turning a placement into ``Plan`` records, priced on the data each policy used.

``forecast_emissions_g`` is the plan's emissions on the forecast (on actuals for ``oracle``);
``baseline_emissions_g`` is the same job run from ``submitted_at`` or ``now``, whichever is
later, in its home region, on the same data. Emissions are ``kW x PUE x g/kWh x h``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime, timedelta

import numpy as np

from scheduler.domain import Plan, Window
from scheduler.planning.grid import FloatArray
from scheduler.planning.placement import Assignment
from scheduler.planning.policies import Books
from scheduler.planning.prices import PriceBook
from scheduler.planning.snapshot import Decision
from scheduler.planning.table import JobTable

BASELINE_UNPRICED_NOTE = "home region unpriced: baseline taken as the plan itself"


def run_emissions_g(
    book: PriceBook,
    table: JobTable,
    j: int,
    row: int,
    start_x: float,
    d: float,
) -> float:
    """Emissions of job ``j`` running ``d`` slots from ``start_x`` in ``row``, grams."""
    if row < 0 or not book.priced[row]:
        return math.nan
    cost = float(book.run_cost(np.array([row]), np.array([start_x]), d)[0, 0])
    return float(table.power_kw[j]) * float(book.pue[row]) * book.grid.step_h * cost


def job_emissions_g(book: PriceBook, table: JobTable, a: Assignment, j: int) -> float:
    """Emissions of job ``j`` as placed in ``a`` (every window of a split job), grams."""
    row = int(a.row[j])
    windows = a.splits.get(j, ((float(a.start_x[j]), float(a.start_x[j] + table.d[j])),))
    return sum(run_emissions_g(book, table, j, row, x0, x1 - x0) for x0, x1 in windows)


def _time(table: JobTable, j: int, x: float, now: datetime) -> datetime:
    """The instant of position ``x``: the job's own earliest start when ``x`` is it (so a plan
    starts exactly at ``now`` rather than a rounded neighbour), else the slot boundary."""
    if abs(x - float(table.x_e[j])) < 1e-9:
        return max(now, table.jobs[j].earliest_start)
    return table.grid.to_time(x)


def windows_of(
    table: JobTable,
    a: Assignment,
    j: int,
    region: str,
    now: datetime,
) -> tuple[Window, ...]:
    job = table.jobs[j]
    if j in a.splits:
        out = []
        for x0, x1 in a.splits[j]:
            start = _time(table, j, x0, now)
            out.append(
                Window(
                    region=region,
                    start=start,
                    end=start + timedelta(seconds=(x1 - x0) * table.grid.step_s),
                )
            )
        return tuple(out)
    start = _time(table, j, float(a.start_x[j]), now)
    run = timedelta(seconds=max(job.duration_s, 0.0))
    return (Window(region=region, start=start, end=start + run),)


def _emissions(books: Books, table: JobTable, a: Assignment) -> tuple[FloatArray, FloatArray]:
    """Every job's planned and baseline emissions (g; NaN where unpriced), vectorised."""
    n = len(table)
    planned, baseline = np.full(n, np.nan), np.full(n, np.nan)
    reporting = [books.reporting(p) for p in table.policy]
    for book in {id(b): b for b in reporting}.values():
        jobs = np.flatnonzero(np.array([b is book for b in reporting], dtype=np.bool_))
        scale = table.power_kw[jobs] * book.grid.step_h
        row, home = a.row[jobs], table.home[jobs]
        ok = (row >= 0) & book.priced[np.maximum(row, 0)]
        r = np.maximum(row, 0)
        cost = book.pointwise_cost(r, a.start_x[jobs], table.d[jobs])
        planned[jobs] = np.where(ok, scale * book.pue[r] * cost, np.nan)
        ok = (home >= 0) & book.priced[np.maximum(home, 0)]
        h = np.maximum(home, 0)
        cost = book.pointwise_cost(h, table.x_b[jobs], table.d[jobs])
        baseline[jobs] = np.where(ok, scale * book.pue[h] * cost, np.nan)
    for j in a.splits:
        planned[j] = job_emissions_g(reporting[j], table, a, j)
    return planned, baseline


def build_decision(
    table: JobTable,
    books: Books,
    a: Assignment,
    now: datetime,
    extra_notes: Mapping[int, str] | None = None,
) -> Decision:
    """Plans for every job, with ``late`` reasons and notes keyed by job id."""
    plans: dict[str, Plan] = {}
    notes: dict[str, str] = {}
    extra = extra_notes or {}
    planned, baseline = _emissions(books, table, a)
    # Start and end instants of the one-run plans, computed once per job without per-job
    # numpy scalars (this loop makes 10k plans per cycle in the benchmark).
    grid = table.grid
    start_s = (a.start_x * grid.step_s).tolist()
    at_earliest = (np.abs(a.start_x - table.x_e) < 1e-9).tolist()
    rows = a.row.tolist()
    reporting = {p: books.reporting(p) for p in set(table.policy)}
    for j, job in enumerate(table.jobs):
        row = rows[j]
        region = table.regions[row] if row >= 0 else job.home_region
        emitted, base = float(planned[j]), float(baseline[j])
        note_parts = [n for n in (a.notes.get(j), extra.get(j)) if n]
        if math.isnan(emitted):
            emitted = 0.0
        if math.isnan(base):
            base = emitted
            note_parts.append(BASELINE_UNPRICED_NOTE)
        note = "; ".join(note_parts) or None
        if note:
            notes[job.id] = note
        if j in a.splits:
            windows = windows_of(table, a, j, region, now)
        else:
            start = (
                max(now, job.earliest_start)
                if at_earliest[j]
                else grid.origin + timedelta(seconds=start_s[j])
            )
            end = start + timedelta(seconds=max(job.duration_s, 0.0))
            windows = (Window(region=region, start=start, end=end),)
        plans[job.id] = Plan(
            region=region,
            windows=windows,
            policy=job.policy,
            planned_at=now,
            forecast_emissions_g=emitted,
            baseline_emissions_g=base,
            forecast_issued_at=reporting[job.policy].issued_at[row] if row >= 0 else None,
            note=note,
        )
    late = {table.jobs[j].id: reason for j, reason in sorted(a.late.items())}
    return Decision(plans=plans, late=late, notes=notes)
