"""Aggregates the store computes for the savings report over many jobs (issue: a million).

The report prices energy on hourly intensity: the store sums, per hour, the energy counted jobs
drew and the hour the same energy would have been drawn had the job started at submit time in
its home region (the baseline). Times are aware UTC; energy is joules.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class EnergyBucket:
    """Energy ``tenant``'s jobs that ran in ``region`` with home ``home_region`` drew in the
    hour from ``hour``; with ``baseline``, the energy that would have been drawn in that hour
    had they started at submit time (their runs shifted back by their delay).
    ``estimated_j`` is the part that was estimated, not metered."""

    tenant: str
    region: str
    home_region: str
    hour: datetime
    energy_j: float
    estimated_j: float
    baseline: bool = False
    # The job kind or group id when the store was asked to split by it (``split``), else None.
    split_key: str | None = None
    # Where the energy was drawn when that is not ``region`` (an earlier copy of a relocated
    # deployment): its zone and PUE price it, while the job's figures stay filed under
    # ``region`` like the per-job report's. None: drawn in ``region``.
    drawn_in: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class JobCount:
    """How many counted jobs of ``tenant`` ran in ``region`` starting on ``day`` (UTC)."""

    tenant: str
    region: str
    day: datetime
    jobs: int
    split_key: str | None = None
    # Sums over those jobs: start - submit (s); held GPU- and core-seconds from start to finish
    # (to ``now`` while running); how many finished after their effective deadline, started
    # more than one planning step after submit, ran outside their home region.
    delay_s: float = 0.0
    gpu_s: float = 0.0
    cpu_s: float = 0.0
    deadline_misses: int = 0
    moved_in_time: int = 0
    moved_in_space: int = 0
    # SCI's R: the sum of those jobs' functional units, how many reported a count, and the
    # units they counted in (``steps``, ``requests``).
    units: float = 0.0
    units_jobs: int = 0
    unit_names: frozenset[str] = frozenset()
    # Relocated deployments: their completed moves and the saving those moves were expected to
    # make (g, the forecast behind each decision; None when none of the jobs moved).
    relocations: int = 0
    relocation_expected_saving_g: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RunBounds:
    """A counted job holding ``gpu_share`` (below 1) of one GPU, for the packing credit: its
    recorded start and finish (None while it runs) and its first and last energy interval
    bounds (the per-job report's run: the earlier of the start and the first interval, to the
    finish, else the last interval's end once terminal)."""

    job_id: str
    region: str
    home_region: str
    gpu_share: float
    terminal: bool
    started_at: datetime
    finished_at: datetime | None
    first_interval_start: datetime
    last_interval_end: datetime
