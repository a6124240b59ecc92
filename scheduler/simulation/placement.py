"""Which jobs of a trace to replay, and where they fall on the carbon traces' calendar.

Without a date selection the chosen jobs keep their spacing and the first arrival lands on the
carbon traces' first step (GAIA and Alibaba traces have no calendar of their own). ``--from`` and
``--to`` pick jobs by submit date on a trace with absolute times (Philly, mapped columns) and
keep their real dates, which the carbon traces must then cover; ``--start-offset`` skips the
trace's first part on any trace. ``--align-year`` moves the chosen jobs onto the carbon traces'
calendar by whole weeks, so every job keeps its day of week and hour (a job trace from 2017
against carbon data from 2023): to the same date in the carbon traces' year, or, for carbon
traces shorter than that, to their first matching day of week and hour.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from scheduler.simulation.grid import epoch_s, from_epoch_s
from scheduler.simulation.job_readers import JobTrace, TraceRecord
from scheduler.simulation.job_traces import select_records
from scheduler.simulation.trace_input import SimulationInputError

_WEEK = timedelta(days=7)


@dataclass(frozen=True, slots=True, kw_only=True)
class Selection:
    """``start``/``end``: submit dates, aware UTC, ``end`` exclusive; ``offset_s``: seconds
    skipped from the trace's start; ``align_year``: map onto the carbon traces' year."""

    start: datetime | None = None
    end: datetime | None = None
    offset_s: float | None = None
    align_year: bool = False

    @property
    def by_date(self) -> bool:
        return self.start is not None or self.end is not None


@dataclass(frozen=True, slots=True, kw_only=True)
class Placement:
    """The chosen records, arrivals in seconds from ``start`` (a grid step), and what the
    output should say about the choice."""

    records: tuple[TraceRecord, ...]
    start: datetime
    statements: tuple[str, ...] = ()


def place(
    trace: JobTrace,
    selection: Selection,
    *,
    path: str,
    span: tuple[datetime, datetime],
    step_s: int,
    min_gpus: int = 0,
) -> Placement:
    """The records ``selection`` picks, placed inside ``span`` (the carbon traces' common span,
    its start on the grid). Raises SimulationInputError when the selection cannot be met."""
    _check(trace, selection, path)
    origin = trace.origin
    first: datetime | None
    if selection.by_date and origin is not None:
        first = selection.start or origin
        offset_s = (first - origin).total_seconds()
        window_s = None if selection.end is None else (selection.end - first).total_seconds()
        if window_s is not None and window_s <= 0:
            raise SimulationInputError(f"--to ({selection.end:%Y-%m-%d}) must come after --from")
    else:
        offset_s, window_s = selection.offset_s or 0.0, None
        first = None if origin is None else origin + timedelta(seconds=offset_s)
    records = select_records(trace, min_gpus=min_gpus, offset_s=offset_s, window_s=window_s)
    if not records:
        raise SimulationInputError(
            f"no job to replay in the selection ({_describe(selection)})", path
        )
    statements = [f"selected jobs {_describe(selection)}"] if _selects(selection) else []
    if first is None or not (selection.by_date or selection.align_year):
        return Placement(records=records, start=span[0], statements=tuple(statements))
    if selection.align_year:
        moved = _aligned(first, records[-1].arrival_s, span, path)
        weeks = round((moved - first) / _WEEK)
        statements.append(
            f"--align-year: jobs from {first:%a %Y-%m-%d %H:%M} moved {weeks:+d} weeks to "
            f"{moved:%a %Y-%m-%d %H:%M} UTC (day of week and hour kept)"
        )
        first = moved
    elif not span[0] <= first < span[1]:
        raise SimulationInputError(
            f"the selected jobs start {first:%Y-%m-%d %H:%M}, outside the carbon traces' "
            f"common span ({span[0]:%Y-%m-%d} to {span[1]:%Y-%m-%d}): choose --from/--to inside "
            "it, or pass --align-year to map them by day of week and hour onto its year",
            path,
        )
    return _on_grid(records, first, step_s, statements)


def _check(trace: JobTrace, selection: Selection, path: str) -> None:
    if selection.by_date and selection.offset_s is not None:
        raise SimulationInputError("give --from/--to or --start-offset, not both")
    if selection.by_date and trace.origin is None:
        raise SimulationInputError(
            f"--from/--to need a trace with absolute times, and this {trace.format} trace "
            "counts from its own start: use --start-offset (e.g. 30d) instead",
            path,
        )
    if selection.align_year and trace.origin is None:
        raise SimulationInputError(
            f"--align-year needs a trace with absolute times, and this {trace.format} trace "
            "counts from its own start (it is placed at the carbon traces' start already)",
            path,
        )


def _selects(selection: Selection) -> bool:
    return selection.by_date or bool(selection.offset_s)


def _describe(selection: Selection) -> str:
    if selection.by_date:
        start = f"{selection.start:%Y-%m-%d %H:%M}" if selection.start else "the trace's start"
        end = f"{selection.end:%Y-%m-%d %H:%M}" if selection.end else "the trace's end"
        return f"submitted from {start} to {end} (exclusive)"
    if selection.offset_s:
        return f"from {selection.offset_s / 86400:g} days after the trace's start"
    return "the whole trace"


def _aligned(
    first: datetime, last_arrival_s: float, span: tuple[datetime, datetime], path: str
) -> datetime:
    """``first`` moved by whole weeks to the same date in the first year of ``span`` where the
    jobs' arrivals fit (else where they start); when no year of ``span`` holds that date (a
    trace of a few weeks), to the first matching weekday and hour in ``span``."""
    starts = []
    for year in range(span[0].year, span[1].year + 1):
        target = _same_date_in(first, year)
        moved = first + round((target - first) / _WEEK) * _WEEK
        if span[0] <= moved < span[1]:
            starts.append(moved)
    fitting = [s for s in starts if s + timedelta(seconds=last_arrival_s) < span[1]]
    if fitting or starts:
        return (fitting or starts)[0]
    moved = first + math.ceil((span[0] - first) / _WEEK) * _WEEK
    if moved < span[1]:
        return moved
    raise SimulationInputError(
        f"--align-year: the carbon traces' common span ({span[0]:%Y-%m-%d} to "
        f"{span[1]:%Y-%m-%d}) holds no {first:%A} {first:%H:%M}",
        path,
    )


def _same_date_in(when: datetime, year: int) -> datetime:
    try:
        return when.replace(year=year)
    except ValueError:  # 29 February
        return when.replace(year=year, day=28)


def _on_grid(
    records: tuple[TraceRecord, ...], first: datetime, step_s: int, statements: list[str]
) -> Placement:
    """Records re-timed from the grid step at or before ``first`` (arrivals are rounded up onto
    the grid later)."""
    start_s = math.floor(epoch_s(first) / step_s) * step_s
    delta_s = epoch_s(first) - start_s
    shifted = tuple(
        TraceRecord(
            source_id=r.source_id,
            arrival_s=r.arrival_s + delta_s,
            duration_s=r.duration_s,
            gpus=r.gpus,
            cpus=r.cpus,
        )
        for r in records
    )
    return Placement(records=shifted, start=from_epoch_s(start_s), statements=tuple(statements))
