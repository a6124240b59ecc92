"""Job dependencies (``--after``): which children may be planned this cycle, and after which
parents; children of a failed ``afterok`` parent are cancelled with the reason.

Per child and parent:

- parent not started (pending, planned, retrying, suspended): the child is planned after the
  parent's planned end, in the same cycle (``scheduler.planning.precedence``);
- parent dispatched or running: the child waits, unplanned (a plan it had goes back to
  ``pending``, so it is never claimed while the parent may still be running);
- parent succeeded, or ended in any way for ``afterany``: no constraint left;
- parent failed or cancelled under ``afterok``: the child is cancelled, with an event.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from scheduler.domain import (
    PLANNABLE_STATES,
    InvalidJobSpec,
    InvalidTransition,
    Job,
    JobEvent,
    JobNotFound,
    JobSpec,
    JobState,
    Principal,
)
from scheduler.domain.jobs import Dependency, DependencyKind
from scheduler.service.context import ServiceContext

log = logging.getLogger(__name__)
ACTOR = "scheduler"
# An array parent stands for at most this many jobs (the batch submit's own limit).
MAX_GROUP_PARENTS = 10_000


@dataclass(frozen=True, slots=True)
class Resolved:
    """The jobs to plan this cycle and, per child, the parents to plan it after."""

    jobs: list[Job]
    parents: dict[str, tuple[str, ...]]


def check_parents(ctx: ServiceContext, spec: JobSpec, principal: Principal) -> JobSpec:
    """At submit: every parent exists and belongs to the job's tenant (admins: any). A parent
    may be an array or sweep (its group id): it stands for every job of the group, with the
    same kind. Returns the spec with groups expanded. Raises InvalidJobSpec naming ``after``."""
    expanded: list[Dependency] = []
    for dep in spec.after:
        try:
            parents = [ctx.store.get_job(dep.job_id)]
        except JobNotFound:
            parents, _ = ctx.store.list_jobs(
                group_id=dep.job_id, limit=MAX_GROUP_PARENTS, count=False
            )
        parents = [p for p in parents if p.tenant == spec.tenant or principal.is_admin]
        if not parents:
            raise InvalidJobSpec("after", f"no job or group {dep.job_id!r}")
        expanded.extend(Dependency(job_id=p.id, kind=dep.kind) for p in parents)
    return dataclasses.replace(spec, after=tuple(dict.fromkeys(expanded))) if expanded else spec


def resolve(ctx: ServiceContext, jobs: Sequence[Job], now: datetime) -> Resolved:
    """Split this cycle's plannable ``jobs`` into those to plan (with their parents) and those
    that wait; cancel the children of failed ``afterok`` parents. Never raises for one job:
    a parent that cannot be read leaves its child waiting."""
    plan: list[Job] = []
    parents: dict[str, tuple[str, ...]] = {}
    for job in jobs:
        if not job.spec.after:
            plan.append(job)
            continue
        verdict = _verdict(ctx, job)
        if isinstance(verdict, tuple):
            plan.append(job)
            if verdict:
                parents[job.id] = verdict
        elif verdict.startswith("cancel:"):
            _move(ctx, job, JobState.CANCELLED, now, verdict.removeprefix("cancel:"))
        else:
            if job.state is JobState.PLANNED:
                _move(ctx, job, JobState.PENDING, now, verdict)
    return Resolved(jobs=plan, parents=parents)


def _verdict(ctx: ServiceContext, job: Job) -> tuple[str, ...] | str:
    """The parents to plan after, or why the job waits, or ``cancel:<why>``."""
    after: list[str] = []
    for dep in job.spec.after:
        try:
            parent = ctx.store.get_job(dep.job_id)
        except JobNotFound:
            return f"cancel:parent {dep.job_id} no longer exists"
        if parent.state is JobState.SUCCEEDED:
            continue
        if parent.state.terminal:
            if dep.kind is DependencyKind.AFTERANY:
                continue
            return f"cancel:parent {parent.id} {parent.state.value} ({dep.kind.value} dependency)"
        if parent.state in PLANNABLE_STATES:
            after.append(parent.id)
            continue
        return f"waiting for parent {parent.id} ({parent.state.value})"
    return tuple(after)


def _move(ctx: ServiceContext, job: Job, target: JobState, now: datetime, reason: str) -> None:
    try:
        ctx.store.transition(
            job.id,
            target,
            JobEvent(
                job_id=job.id,
                at=now,
                kind="state",
                actor=ACTOR,
                reason=reason,
                from_state=job.state,
                to_state=target,
            ),
            expected_from=[job.state],
            finished_at=now if target is JobState.CANCELLED else None,
            message=reason if target is JobState.CANCELLED else None,
            clear_plan=target is JobState.PENDING,
        )
    except (InvalidTransition, JobNotFound):
        log.info("job %s changed state concurrently; leaving it", job.id)
    ctx.job_table.forget({job.id})
