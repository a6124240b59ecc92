"""Job traces into simulated jobs: selection, deadlines, power, placement on a calendar.

Files are read by ``job_readers`` (re-exported here). Arrivals are kept as seconds from the
trace's own origin, so a caller places the trace on a carbon trace's calendar with
``to_sim_jobs``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from scheduler.simulation.job_readers import (
    JobTrace,
    JobTraceError,
    TraceFormat,
    TraceRecord,
    detect_format,
    read_job_trace,
)

__all__ = [
    "DeadlineRule",
    "JobTrace",
    "JobTraceError",
    "PowerModel",
    "SimJob",
    "TraceFormat",
    "TraceRecord",
    "detect_format",
    "next_workday_deadline",
    "read_job_trace",
    "select_records",
    "slack_deadline",
    "to_sim_jobs",
]


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
