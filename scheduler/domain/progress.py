"""What a job did, as its worker counts it: SCI's functional unit R.

A training job counts optimiser steps, a deployment the requests it served. The worker sends a
running total per attempt; within an attempt the total only grows. A later attempt's total
replaces an earlier one's: it is the job's own count of its useful work (a job resumed from a
checkpoint counts on from the checkpoint's step), so summing attempts would count a step
redone after a crash twice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scheduler.domain.errors import GreenlightError

# The unit each job kind counts; a report's R is 1,000 of them.
UNIT_BY_KIND = {"training": "steps", "deployment": "requests"}
# Larger totals are not a count anyone made (a million steps a second for ~30 years).
MAX_UNITS = 1e15


class ProgressConflict(GreenlightError):
    """A progress report that contradicts the stored one: a lower total for the same attempt,
    a report from an attempt older than the stored one, or an attempt that takes no more."""


@dataclass(frozen=True, slots=True, kw_only=True)
class JobProgress:
    """``units`` (a count of ``unit``, >= 0, finite) done by ``job_id`` as of ``attempt``."""

    job_id: str
    attempt: int
    units: float
    unit: str

    def __post_init__(self) -> None:
        if not math.isfinite(self.units) or not 0 <= self.units <= MAX_UNITS:
            raise ValueError(f"units must be finite, 0..{MAX_UNITS:g}; got {self.units!r}")
        if self.attempt < 1:
            raise ValueError(f"attempt must be >= 1; got {self.attempt}")


def supersedes(new: JobProgress, stored: JobProgress | None) -> bool | None:
    """Whether ``new`` replaces ``stored``: True (a later attempt, or a higher total of the same
    one), False (the same total again: an idempotent repeat), None (a conflict: a lower total
    of the same attempt, or an older attempt)."""
    if stored is None or new.attempt > stored.attempt:
        return True
    if new.attempt < stored.attempt or new.units < stored.units:
        return None
    return new.units > stored.units
