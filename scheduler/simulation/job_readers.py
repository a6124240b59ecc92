"""Job-trace files: GAIA, Alibaba GPU v2023 ("openb") and Philly detected from the header, any
other CSV mapped by hand (``--job-columns submit=…,start=…,end=…|duration=…,gpus=…,cpus=…``).

Arrivals are kept as seconds from the trace's own origin. GAIA and Alibaba are relative (no
``origin``); Philly and mapped traces are absolute and keep their first submit time as
``origin``. Rows that never ran (no end, no start, no positive run time) are skipped and
counted by reason. A bad value is refused with its row and column.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from scheduler.simulation.trace_input import (
    TIME_EXPECTED,
    CsvTable,
    SimulationInputError,
    missing_columns,
    parse_columns,
    parse_number,
    parse_time,
    read_csv,
    row_message,
)

_T = TypeVar("_T")
_HOUR_S = 3600.0
JOB_KEYS = ("submit", "start", "end", "duration", "gpus", "cpus")
NO_END = "no end"
NO_START = "no start"
NOT_POSITIVE = "no positive run time"
NEVER_SCHEDULED = "never scheduled"


class JobTraceError(SimulationInputError):
    """A job trace file that cannot be read: unknown columns or a malformed row."""

    def __init__(self, path: Path | str, message: str) -> None:
        super().__init__(message, path)


class TraceFormat(enum.StrEnum):
    GAIA = "gaia"  # arrival_time,length,cpus (hours)
    ALIBABA = "alibaba-openb"  # cluster-trace-gpu-v2023 pod list (seconds from trace start)
    PHILLY = "philly"  # pollux/adaptdl philly.csv (absolute submit time, seconds)
    MAPPED = "mapped"  # --job-columns


_SIGNATURES: tuple[tuple[TraceFormat, frozenset[str]], ...] = (
    (TraceFormat.GAIA, frozenset({"arrival_time", "length", "cpus"})),
    (
        TraceFormat.ALIBABA,
        frozenset({"num_gpu", "creation_time", "deletion_time", "scheduled_time"}),
    ),
    (TraceFormat.PHILLY, frozenset({"timestamp", "duration", "num_gpus"})),
)
ACCEPTED_JOB_FORMATS = (
    "GAIA (arrival_time,length,cpus), "
    "Alibaba openb (num_gpu,creation_time,scheduled_time,deletion_time), "
    "Philly (timestamp,duration,num_gpus), "
    "or any CSV mapped with --job-columns submit=…,end=…|duration=…[,start=…,gpus=…,cpus=…]"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class TraceRecord:
    """One job as the trace recorded it: arrival in seconds from the trace origin."""

    source_id: str
    arrival_s: float
    duration_s: float
    gpus: int
    cpus: float


@dataclass(frozen=True, slots=True, kw_only=True)
class JobTrace:
    """Records sorted by arrival. ``origin`` is the absolute time of ``arrival_s == 0`` when the
    trace has one (Philly, mapped), else None. ``skipped`` counts rows left out, by reason."""

    format: TraceFormat
    records: tuple[TraceRecord, ...]
    origin: datetime | None = None
    skipped: tuple[tuple[str, int], ...] = ()

    @property
    def skipped_rows(self) -> int:
        return sum(n for _, n in self.skipped)


def parse_job_columns(text: str) -> dict[str, str]:
    """``--job-columns submit=…,end=…|duration=…[,start=…,gpus=…,cpus=…]``; raises
    SimulationInputError."""
    return parse_columns(
        text, option="--job-columns", keys=JOB_KEYS, required=(("submit",), ("end", "duration"))
    )


def detect_format(columns: Sequence[str]) -> TraceFormat:
    """The trace format whose required columns are all in ``columns``; raises ValueError."""
    present = {c.strip().lstrip("\ufeff") for c in columns}
    for fmt, required in _SIGNATURES:
        if required <= present:
            return fmt
    raise ValueError(
        f"unrecognised job trace columns {sorted(present)}: accepted formats: "
        f"{ACCEPTED_JOB_FORMATS}"
    )


def read_job_trace(path: Path | str, columns: Mapping[str, str] | None = None) -> JobTrace:
    """Read a job trace, detecting its format unless ``columns`` maps it; rows sorted by
    arrival. Raises JobTraceError naming the file (and the row and column of a bad value)."""
    path = Path(path)
    table = read_csv(path, "job trace")
    if columns is not None:
        missing = missing_columns(table, columns)
        if missing:
            raise JobTraceError(
                path, f"no column {missing[0]!r} (from --job-columns) among {list(table.header)}"
            )
        return _mapped(table, columns)
    try:
        fmt = detect_format(table.header)
    except ValueError as e:
        raise JobTraceError(path, str(e)) from e
    if fmt is TraceFormat.GAIA:
        return _gaia(table)
    if fmt is TraceFormat.ALIBABA:
        return _alibaba(table)
    return _philly(table)


class _Rows:
    """Cell access by column name with errors that name the row and the column."""

    def __init__(self, table: CsvTable) -> None:
        self.table = table
        self.index = {name: i for i, name in enumerate(table.header)}

    def cell(self, row: Sequence[str], column: str) -> str:
        i = self.index[column]
        return row[i].strip() if i < len(row) else ""

    def fail(self, number: int, column: str, expected: str, got: str) -> JobTraceError:
        return JobTraceError(self.table.path, row_message(number, column, expected, got))

    def number(self, number: int, row: Sequence[str], column: str, expected: str) -> float:
        value = parse_number(self.cell(row, column))
        if value is None or value < 0:
            raise self.fail(number, column, expected, self.cell(row, column))
        return value

    def count(self, number: int, row: Sequence[str], column: str) -> int:
        value = self.number(number, row, column, "a whole number >= 0")
        if value != int(value):
            raise self.fail(number, column, "a whole number >= 0", self.cell(row, column))
        return int(value)

    def time(self, number: int, row: Sequence[str], column: str) -> datetime:
        value = parse_time(self.cell(row, column))
        if value is None:
            raise self.fail(number, column, TIME_EXPECTED, self.cell(row, column))
        return value


def _sorted(records: list[TraceRecord]) -> tuple[TraceRecord, ...]:
    return tuple(sorted(records, key=lambda r: (r.arrival_s, r.source_id)))


def _counted(skipped: dict[str, int]) -> tuple[tuple[str, int], ...]:
    return tuple((reason, n) for reason, n in skipped.items() if n)


def _gaia(table: CsvTable) -> JobTrace:
    cols = _Rows(table)
    hours = "a number of hours >= 0"
    records = [
        TraceRecord(
            source_id=f"gaia-{i}",
            arrival_s=cols.number(n, r, "arrival_time", hours) * _HOUR_S,
            duration_s=cols.number(n, r, "length", hours) * _HOUR_S,
            gpus=0,
            cpus=cols.number(n, r, "cpus", "a number of CPUs >= 0"),
        )
        for i, (n, r) in enumerate(table.rows)
    ]
    return JobTrace(format=TraceFormat.GAIA, records=_sorted(records))


def _alibaba(table: CsvTable) -> JobTrace:
    cols = _Rows(table)
    seconds = "seconds from the trace start"
    records, skipped = [], {NEVER_SCHEDULED: 0, NOT_POSITIVE: 0}
    milli_cpus = _cpus(cols, "milli-CPUs >= 0")
    for n, r in table.rows:
        if not cols.cell(r, "scheduled_time") or not cols.cell(r, "deletion_time"):
            skipped[NEVER_SCHEDULED] += 1  # Pending pods never ran: they have no run time
            continue
        end_s = cols.number(n, r, "deletion_time", seconds)
        duration_s = end_s - cols.number(n, r, "scheduled_time", seconds)
        if duration_s <= 0:
            skipped[NOT_POSITIVE] += 1
            continue
        # GPU-sharing pods (gpu_milli < 1000 on one GPU) still hold a whole device here.
        records.append(
            TraceRecord(
                source_id=cols.cell(r, "name") if "name" in cols.index else f"row-{n}",
                arrival_s=cols.number(n, r, "creation_time", seconds),
                duration_s=duration_s,
                gpus=cols.count(n, r, "num_gpu"),
                cpus=_optional(cols, milli_cpus, n, r, "cpu_milli", 0.0) / 1000.0,
            )
        )
    return JobTrace(format=TraceFormat.ALIBABA, records=_sorted(records), skipped=_counted(skipped))


def _philly(table: CsvTable) -> JobTrace:
    cols = _Rows(table)
    rows = [
        (
            f"philly-{i}",
            cols.time(n, r, "timestamp"),
            cols.number(n, r, "duration", "seconds >= 0"),
            cols.count(n, r, "num_gpus"),
            0.0,
        )
        for i, (n, r) in enumerate(table.rows)
    ]
    return _absolute(TraceFormat.PHILLY, rows, {})


def _absolute(
    fmt: TraceFormat,
    rows: list[tuple[str, datetime, float, int, float]],
    skipped: dict[str, int],
) -> JobTrace:
    """Records from ``(id, submit, duration_s, gpus, cpus)``; the first submit is the origin."""
    if not rows:
        return JobTrace(format=fmt, records=(), skipped=_counted(skipped))
    origin = min(submit for _, submit, _, _, _ in rows)
    records = [
        TraceRecord(
            source_id=job_id,
            arrival_s=(submit - origin).total_seconds(),
            duration_s=duration_s,
            gpus=gpus,
            cpus=cpus,
        )
        for job_id, submit, duration_s, gpus, cpus in rows
    ]
    return JobTrace(format=fmt, records=_sorted(records), origin=origin, skipped=_counted(skipped))


def _mapped(table: CsvTable, columns: Mapping[str, str]) -> JobTrace:
    cols = _Rows(table)
    skipped = {NO_END: 0, NO_START: 0, NOT_POSITIVE: 0}
    rows = []
    for n, r in table.rows:
        submit = cols.time(n, r, columns["submit"])
        started = submit
        if "start" in columns:
            if not cols.cell(r, columns["start"]):
                skipped[NO_START] += 1
                continue
            started = cols.time(n, r, columns["start"])
        end_column = columns.get("end") or columns["duration"]
        if not cols.cell(r, end_column):
            skipped[NO_END] += 1
            continue
        if "end" in columns:
            duration_s = (cols.time(n, r, end_column) - started).total_seconds()
        else:
            duration_s = cols.number(n, r, end_column, "a run time in seconds >= 0")
        if duration_s <= 0:
            skipped[NOT_POSITIVE] += 1
            continue
        rows.append(
            (
                f"row-{n}",
                submit,
                duration_s,
                _optional(cols, cols.count, n, r, columns.get("gpus"), 0),
                _optional(
                    cols, _cpus(cols, "a number of CPUs >= 0"), n, r, columns.get("cpus"), 0.0
                ),
            )
        )
    return _absolute(TraceFormat.MAPPED, rows, skipped)


def _cpus(cols: _Rows, expected: str) -> Callable[[int, Sequence[str], str], float]:
    def read(number: int, row: Sequence[str], column: str) -> float:
        return cols.number(number, row, column, expected)

    return read


def _optional(
    cols: _Rows,
    read: Callable[[int, Sequence[str], str], _T],
    number: int,
    row: Sequence[str],
    column: str | None,
    default: _T,
) -> _T:
    """A mapped resource column: absent from the mapping, or an empty cell, asks for none."""
    if column is None or column not in cols.index or not cols.cell(row, column):
        return default
    return read(number, row, column)
