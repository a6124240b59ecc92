"""Finiteness and range checks at the planning core's boundary: pure, stdlib only.

The API bounds every number a tenant sends, but the core does not trust its callers: a job
whose numbers are non-finite or absurd (``1e308`` CPUs make an infinite power, hence infinite
emissions a JSON column refuses) is named in an ``UnplannableJob`` instead of poisoning the
whole cycle, and a plan that comes out with a non-finite number is refused the same way. The
service sets such a job aside (quarantine) and plans the rest.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from scheduler.domain import Plan
from scheduler.domain.errors import UnplannableJob
from scheduler.planning.snapshot import Decision, PlanningJob

# Beyond these a number is a typo or an attack, not a job: 2**53 keeps integers exact in numpy
# float64 and JSON; ten years bounds every duration the grid can lay slots for.
MAX_EXACT_INT = 2**53
MAX_GPUS = 1_000_000
MAX_POWER_W = 1e9
MAX_DURATION_S = 10 * 366 * 86400.0


def job_problem(job: PlanningJob) -> str | None:
    """Why the core cannot plan ``job`` (a non-finite or out-of-range number), or None."""
    if not 0 <= job.gpus <= MAX_GPUS:
        return f"gpus={job.gpus} is outside [0, {MAX_GPUS}]"
    if not (math.isfinite(job.power_w) and 0.0 <= job.power_w <= MAX_POWER_W):
        return f"expected power {job.power_w!r} W is not a finite number in [0, {MAX_POWER_W:g}]"
    if not (math.isfinite(job.duration_s) and 0.0 < job.duration_s <= MAX_DURATION_S):
        return f"duration {job.duration_s!r} s is not a finite number in (0, {MAX_DURATION_S:g}]"
    if abs(job.priority) > MAX_EXACT_INT:
        return f"priority {job.priority} is beyond ±2**53"
    return None


def plan_problem(plan: Plan) -> str | None:
    """Why ``plan`` cannot be stored (a non-finite number), or None."""
    for name in ("forecast_emissions_g", "baseline_emissions_g"):
        value = getattr(plan, name)
        if not math.isfinite(value):
            return f"plan's {name} is {value!r}"
    return None


def check_jobs(jobs: Iterable[PlanningJob]) -> None:
    """Raise UnplannableJob for the first job the core cannot plan."""
    for job in jobs:
        reason = job_problem(job)
        if reason is not None:
            raise UnplannableJob(job.id, reason)


def check_decision(decision: Decision) -> None:
    """Raise UnplannableJob for the first plan holding a non-finite number."""
    for job_id, plan in decision.plans.items():
        reason = plan_problem(plan)
        if reason is not None:
            raise UnplannableJob(job_id, reason)
