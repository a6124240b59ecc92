"""Submit-time admission: can a new job meet its deadline with the capacity there is?

``check_submit`` places the snapshot's jobs with and without the new one (the same greedy and
deadline repair the cycle uses, prices aside: feasibility does not depend on them) and refuses
the job when it would be late, or when taking it would make queued jobs late that otherwise
are not. The service maps a reason to HTTP 422.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from scheduler.domain import JobKind
from scheduler.planning.deadlines import place_within_deadlines
from scheduler.planning.snapshot import PlanningJob, Snapshot


def check_submit(snapshot: Snapshot, job: PlanningJob) -> str | None:
    """Why ``job`` cannot meet its deadline given ``snapshot`` (running jobs, queued jobs,
    capacity), or None when it can. ``job`` may or may not already be in ``snapshot.jobs``."""
    reason = _static_reason(snapshot, job)
    if reason is not None:
        return reason
    others = tuple(j for j in snapshot.jobs if j.id != job.id)
    with_job = _late(dataclasses.replace(snapshot, jobs=(*others, job)))
    if job.id in with_job:
        return f"cannot meet its deadline with current capacity: {with_job[job.id]}"
    if not with_job:
        return None
    # Only when some queued job is late with it does the placement without it matter.
    newly_late = set(with_job) - set(_late(dataclasses.replace(snapshot, jobs=others)))
    if newly_late:
        return (
            f"accepting it would make {len(newly_late)} queued job(s) miss their deadline "
            "with current capacity"
        )
    return None


def _static_reason(snapshot: Snapshot, job: PlanningJob) -> str | None:
    names = {r.name: r for r in snapshot.regions}
    allowed = [names[n] for n in job.allowed_regions if n in names] or list(names.values())
    if not allowed:
        return "no allowed region is configured"
    most = max(r.gpus for r in allowed)
    if job.gpus > most:
        return f"needs {job.gpus} GPUs; the most any allowed region has is {most}"
    if job.kind is JobKind.TRAINING and job.deadline is not None:
        earliest_end = max(snapshot.now, job.earliest_start) + timedelta(seconds=job.duration_s)
        if earliest_end > job.deadline:
            return (
                f"deadline {job.deadline.isoformat()} is before the earliest possible end "
                f"{earliest_end.isoformat()}"
            )
    return None


def _late(snapshot: Snapshot) -> dict[str, str]:
    """Ids of jobs the placement cannot get in before their deadline, with the reason."""
    if not snapshot.jobs:
        return {}
    from scheduler.planning.cycle import planning_inputs
    from scheduler.planning.policies import current_plans

    table, books, ledger = planning_inputs(snapshot)
    assignment, _ = place_within_deadlines(table, books, current_plans(table, table.grid), ledger)
    return {table.jobs[j].id: reason for j, reason in assignment.late.items()}
