"""The next flagged energy estimate of a run nothing meters (a Ray Serve application). Pure.

A run's estimate is written as consecutive intervals ``[start, end)`` with no gap and no
overlap: each starts where the last one ended (the run's start for the first). A periodic one
ends on a grid of ``interval_s`` counted from the run's start, so two passes a moment apart
(or two scheduler replicas) compute the same interval, and the store's idempotency key
``(job, attempt, device, interval_start)`` takes it once. The final one ends where the run
ended. No interval spans more than ``MAX_INTERVAL_S`` (a long outage is caught up over several
passes).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from scheduler.domain.energy import MAX_INTERVAL_S, EnergyReport, MeterMethod


@dataclass(frozen=True, slots=True, kw_only=True)
class EstimateStep:
    """One interval to estimate: ``[start, end)``; ``final`` when it ends the run."""

    start: datetime
    end: datetime
    final: bool


def next_estimate_step(
    *,
    run_start: datetime,
    covered_until: datetime | None,
    now: datetime,
    ended_at: datetime | None,
    interval_s: float,
) -> EstimateStep | None:
    """The next interval to write, or None when nothing is due yet.

    ``covered_until`` is the end of the run's last estimate (None before the first);
    ``ended_at`` the run's end (None while it runs). While running, an interval is due once a
    whole ``interval_s`` has passed since ``covered_until``; it ends on the grid. After the run
    ended, whatever is left up to ``ended_at`` is due. Raises ValueError for ``interval_s <= 0``.
    """
    if not interval_s > 0:
        raise ValueError(f"interval_s must be > 0, got {interval_s!r}")
    start = max(covered_until or run_start, run_start)
    cap = start + timedelta(seconds=MAX_INTERVAL_S)
    if ended_at is not None:
        if ended_at <= start:
            return None
        return EstimateStep(start=start, end=min(ended_at, cap), final=ended_at <= cap)
    ticks = math.floor((now - run_start).total_seconds() / interval_s)
    end = min(run_start + timedelta(seconds=ticks * interval_s), cap)
    if end <= start:
        return None
    return EstimateStep(start=start, end=end, final=False)


def estimate_reports(
    step: EstimateStep,
    *,
    job_id: str,
    attempt: int,
    node: str,
    power_w: Mapping[str, float],
) -> list[EnergyReport]:
    """One ``estimate`` report per device of ``power_w`` (watts) over ``step``."""
    duration_s = (step.end - step.start).total_seconds()
    return [
        EnergyReport(
            job_id=job_id,
            attempt=attempt,
            node=node,
            device=device,
            interval_start=step.start,
            interval_end=step.end,
            energy_j=watts * duration_s,
            method=MeterMethod.ESTIMATE,
        )
        for device, watts in sorted(power_w.items())
    ]
