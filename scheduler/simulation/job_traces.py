"""Job traces: read GAIA, Alibaba GPU v2023 ("openb") and Philly files into simulated jobs.

The format is detected from the CSV header. Arrivals are kept as seconds from the trace's own
origin (GAIA and Alibaba are relative; Philly is absolute and keeps its first submit time as
``origin``), so a caller places the trace on a carbon trace's calendar with ``to_sim_jobs``.
"""

from __future__ import annotations

import csv
import enum
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from scheduler.domain import GreenlightError

_HOUR_S = 3600.0


class JobTraceError(GreenlightError):
    """A job trace file that cannot be read: unknown columns or a malformed row."""

    def __init__(self, path: Path | str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = str(path)


class TraceFormat(enum.StrEnum):
    GAIA = "gaia"  # arrival_time,length,cpus (hours)
    ALIBABA = "alibaba-openb"  # cluster-trace-gpu-v2023 pod list (seconds from trace start)
    PHILLY = "philly"  # pollux/adaptdl philly.csv (absolute submit time, seconds)


_SIGNATURES: tuple[tuple[TraceFormat, frozenset[str]], ...] = (
    (TraceFormat.GAIA, frozenset({"arrival_time", "length", "cpus"})),
    (
        TraceFormat.ALIBABA,
        frozenset({"num_gpu", "creation_time", "deletion_time", "scheduled_time"}),
    ),
    (TraceFormat.PHILLY, frozenset({"timestamp", "duration", "num_gpus"})),
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
    trace has one (Philly), else None."""

    format: TraceFormat
    records: tuple[TraceRecord, ...]
    origin: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SimJob:
    """A job the simulator replays. Datetimes are aware UTC; power is the mean draw in watts."""

    id: str
    arrival: datetime
    duration_s: float
    gpus: int
    power_w: float
    deadline: datetime
    home_region: str
    allowed_regions: tuple[str, ...] = ()
    interruptible: bool = False

    def __post_init__(self) -> None:
        if self.duration_s <= 0:
            raise ValueError(f"job {self.id}: duration_s must be positive")
        if self.deadline < self.arrival + timedelta(seconds=self.duration_s):
            raise ValueError(f"job {self.id}: deadline before arrival + duration")


@dataclass(frozen=True, slots=True, kw_only=True)
class PowerModel:
    """Mean draw of a job from what it asks for (the defaults match ``[power]`` in the config)."""

    gpu_w: float = 300.0
    cpu_core_w: float = 12.0
    base_w: float = 20.0

    def power_w(self, gpus: int, cpus: float) -> float:
        return self.base_w + gpus * self.gpu_w + cpus * self.cpu_core_w


DeadlineRule = Callable[[datetime, float], datetime]
"""``(arrival, duration_s) -> deadline``."""


def slack_deadline(slack_s: float, slack_fraction: float = 0.0) -> DeadlineRule:
    """Deadline = arrival + duration + ``slack_s`` + ``slack_fraction`` x duration."""
    if slack_s < 0 or slack_fraction < 0:
        raise ValueError("slack must be non-negative")

    def rule(arrival: datetime, duration_s: float) -> datetime:
        return arrival + timedelta(seconds=duration_s * (1.0 + slack_fraction) + slack_s)

    return rule


def next_workday_deadline(arrival: datetime, duration_s: float) -> datetime:
    """Let's Wait Awhile's "next workday" rule on the would-be finish time (UTC wall clock).

    Finishing on a Saturday: Monday 09:00. On a Sunday or after 17:00: the next day 09:00
    (so Friday evening gives Saturday 09:00, as in the published code). Before 09:00: that day
    09:00. Otherwise the finish time itself (no slack).
    """
    finish = arrival + timedelta(seconds=duration_s)
    nine = finish.replace(hour=9, minute=0, second=0, microsecond=0)
    hour = finish.hour + finish.minute / 60.0
    if finish.weekday() == 5:
        return nine + timedelta(days=2)
    if finish.weekday() == 6 or hour > 17:
        return nine + timedelta(days=1)
    if hour < 9:
        return nine
    return finish


def detect_format(columns: Sequence[str]) -> TraceFormat:
    """The trace format whose required columns are all in ``columns``; raises ValueError."""
    present = {c.strip().lstrip("\ufeff") for c in columns}
    for fmt, required in _SIGNATURES:
        if required <= present:
            return fmt
    raise ValueError(f"unrecognised job trace columns: {sorted(present)}")


def read_job_trace(path: Path | str) -> JobTrace:
    """Read a job trace, detecting its format; rows sorted by arrival.

    Alibaba pods never scheduled (``Pending``) are skipped: they never ran, so they have no run
    time. Raises JobTraceError for unknown columns or malformed rows.
    """
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            header = [h.strip() for h in next(reader, [])]
            rows = [row for row in reader if row and any(cell.strip() for cell in row)]
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise JobTraceError(path, f"unreadable: {e}") from e
    try:
        fmt = detect_format(header)
    except ValueError as e:
        raise JobTraceError(path, str(e)) from e
    col = {name: i for i, name in enumerate(header)}
    try:
        if fmt is TraceFormat.GAIA:
            return JobTrace(format=fmt, records=_sorted(_gaia(rows, col)))
        if fmt is TraceFormat.ALIBABA:
            return JobTrace(format=fmt, records=_sorted(_alibaba(rows, col)))
        return _philly(rows, col)
    except (IndexError, ValueError) as e:
        raise JobTraceError(path, f"malformed row: {e}") from e


def _sorted(records: list[TraceRecord]) -> tuple[TraceRecord, ...]:
    return tuple(sorted(records, key=lambda r: (r.arrival_s, r.source_id)))


def _gaia(rows: list[list[str]], col: dict[str, int]) -> list[TraceRecord]:
    arrival, length, cpus = col["arrival_time"], col["length"], col["cpus"]
    return [
        TraceRecord(
            source_id=f"gaia-{i}",
            arrival_s=float(r[arrival]) * _HOUR_S,
            duration_s=float(r[length]) * _HOUR_S,
            gpus=0,
            cpus=float(r[cpus]),
        )
        for i, r in enumerate(rows)
    ]


def _alibaba(rows: list[list[str]], col: dict[str, int]) -> list[TraceRecord]:
    name, gpus, cpu = col["name"], col["num_gpu"], col["cpu_milli"]
    created, scheduled, deleted = col["creation_time"], col["scheduled_time"], col["deletion_time"]
    records = []
    for r in rows:
        if not r[scheduled].strip() or not r[deleted].strip():
            continue
        duration_s = float(r[deleted]) - float(r[scheduled])
        if duration_s <= 0:
            continue
        # GPU-sharing pods (gpu_milli < 1000 on one GPU) still hold a whole device here.
        records.append(
            TraceRecord(
                source_id=r[name],
                arrival_s=float(r[created]),
                duration_s=duration_s,
                gpus=int(r[gpus]),
                cpus=float(r[cpu]) / 1000.0,
            )
        )
    return records


def _philly(rows: list[list[str]], col: dict[str, int]) -> JobTrace:
    stamp, duration, gpus = col["timestamp"], col["duration"], col["num_gpus"]
    # Naive wall times are UTC; differences of naive datetimes are exact and cheap.
    stamps = [datetime.fromisoformat(r[stamp].strip()) for r in rows]
    if not stamps:
        return JobTrace(format=TraceFormat.PHILLY, records=())
    origin = min(stamps)
    records = [
        TraceRecord(
            source_id=f"philly-{i}",
            arrival_s=(t - origin).total_seconds(),
            duration_s=float(r[duration]),
            gpus=int(r[gpus]),
            cpus=0.0,
        )
        for i, (r, t) in enumerate(zip(rows, stamps, strict=True))
    ]
    return JobTrace(
        format=TraceFormat.PHILLY, records=_sorted(records), origin=origin.replace(tzinfo=UTC)
    )


def select_records(
    trace: JobTrace,
    *,
    min_duration_s: float = 0.0,
    max_duration_s: float = math.inf,
    min_gpus: int = 0,
    max_gpus: int | None = None,
    window_s: float | None = None,
    offset_s: float = 0.0,
    count: int | None = None,
    seed: int = 0,
) -> tuple[TraceRecord, ...]:
    """Filter records by run time and GPUs, keep those arriving in
    ``[offset_s, offset_s + window_s)``, then thin to ``count`` (a seeded uniform sample that
    keeps the real arrival pattern). Arrivals are shifted so the window starts at 0."""
    end_s = math.inf if window_s is None else offset_s + window_s
    kept = [
        r
        for r in trace.records
        if min_duration_s <= r.duration_s <= max_duration_s
        and r.gpus >= min_gpus
        and (max_gpus is None or r.gpus <= max_gpus)
        and offset_s <= r.arrival_s < end_s
    ]
    if count is not None and count < len(kept):
        chosen = np.sort(np.random.default_rng(seed).choice(len(kept), size=count, replace=False))
        kept = [kept[int(i)] for i in chosen]
    return tuple(
        TraceRecord(
            source_id=r.source_id,
            arrival_s=r.arrival_s - offset_s,
            duration_s=r.duration_s,
            gpus=r.gpus,
            cpus=r.cpus,
        )
        for r in kept
    )


def to_sim_jobs(
    records: Sequence[TraceRecord],
    *,
    start: datetime,
    regions: Sequence[str],
    deadline_rule: DeadlineRule,
    power: PowerModel | None = None,
    seed: int = 0,
    interruptible: bool = False,
    align_s: float | None = None,
) -> list[SimJob]:
    """Place records on the calendar from ``start`` (aware UTC) as simulated jobs.

    Home regions are drawn uniformly from ``regions`` with ``seed``; every region is allowed.
    ``align_s`` rounds arrivals up to that grid (e.g. the simulation step).
    """
    if start.tzinfo is None:
        raise ValueError("start must be timezone-aware")
    if not regions:
        raise ValueError("at least one region is needed")
    power = power or PowerModel()
    homes = np.random.default_rng(seed).integers(0, len(regions), size=len(records))
    jobs = []
    for i, r in enumerate(records):
        arrival_s = r.arrival_s
        if align_s:
            arrival_s = math.ceil(arrival_s / align_s) * align_s
        arrival = start + timedelta(seconds=arrival_s)
        jobs.append(
            SimJob(
                id=r.source_id,
                arrival=arrival,
                duration_s=r.duration_s,
                gpus=r.gpus,
                power_w=power.power_w(r.gpus, r.cpus),
                deadline=deadline_rule(arrival, r.duration_s),
                home_region=regions[int(homes[i])],
                allowed_regions=tuple(regions),
                interruptible=interruptible,
            )
        )
    return jobs
