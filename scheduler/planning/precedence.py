"""Precedence between jobs of one snapshot (``greenlight submit --after``): a child starts only
after every parent's planned end.

Planned level by level: the jobs with no parent left to plan first, then their children with
``earliest_start`` moved to their parents' latest planned end and the parents' windows held as
occupied capacity, and so on down the chain. Each level is one call of the ordinary planner, so
every placement guarantee (capacity, deadlines, never worse than running now within the level)
holds, and a child never starts before a parent ends as planned. A child whose parent could not
be placed in this snapshot is left out: it waits for the next cycle. Pure: no I/O, no clock.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping

from scheduler.planning.snapshot import Decision, Occupancy, PlanningJob, Snapshot


def plan_in_levels(
    snapshot: Snapshot,
    parents: Mapping[str, tuple[str, ...]],
    decide: Callable[[Snapshot], Decision],
) -> Decision:
    """``decide`` over ``snapshot`` honouring ``parents`` (job id -> ids of the not-yet-started
    jobs it must start after). A job whose parent is not in the snapshot, got no plan, or is
    on a cycle of parents is left out (it waits)."""
    in_snapshot = {job.id for job in snapshot.jobs}
    waiting = {job_id: ps for job_id, ps in parents.items() if job_id in in_snapshot and ps}
    if not waiting:
        return decide(snapshot)
    # A parent missing from the snapshot (not placeable this cycle) holds its children back.
    remaining = [
        job for job in snapshot.jobs if all(p in in_snapshot for p in waiting.get(job.id, ()))
    ]
    merged = Decision(plans={})
    held = list(snapshot.occupancy)
    while remaining:
        level, later = _next_level(remaining, waiting, merged)
        if not level:
            break  # what is left waits on a parent that was not placed (or on a cycle)
        decision = decide(dataclasses.replace(snapshot, jobs=tuple(level), occupancy=tuple(held)))
        held.extend(
            Occupancy(region=w.region, gpus=job.gpus, start=w.start, end=w.end)
            for job in level
            if (plan := decision.plans.get(job.id)) is not None
            for w in plan.windows
        )
        merged = Decision(
            plans={**merged.plans, **decision.plans},
            late={**merged.late, **decision.late},
            notes={**merged.notes, **decision.notes},
        )
        remaining = later
    return merged


def _next_level(
    remaining: list[PlanningJob],
    waiting: Mapping[str, tuple[str, ...]],
    done: Decision,
) -> tuple[list[PlanningJob], list[PlanningJob]]:
    """The jobs whose parents all have plans (their start moved after those plans' ends), and
    the rest. A job whose parent was decided without a plan drops out of both."""
    pending_ids = {job.id for job in remaining}
    level: list[PlanningJob] = []
    later: list[PlanningJob] = []
    for job in remaining:
        ps = waiting.get(job.id, ())
        if any(p in pending_ids for p in ps):
            later.append(job)
            continue
        ends = [plan.end for p in ps if (plan := done.plans.get(p)) is not None]
        if len(ends) < len(ps):
            continue  # a parent got no plan: this job waits for the next cycle
        if ends and max(ends) > job.earliest_start:
            job = dataclasses.replace(job, earliest_start=max(ends))
        level.append(job)
    return level, later
