"""Batch submit (``POST /v1/jobs/batch``): up to ``MAX_BATCH`` specs, all or none.

The same rules and answers as one ``submit`` per spec, at a cost per job of a few
microseconds: what a sweep's jobs share (regions, resources, timing) is validated once per
distinct shape (``SpecChecker``), the ledger admits jobs alike together (``admit_many``), ids
come from one read of the random source, and rows go to the store without a ``Job`` per spec.
"""

from __future__ import annotations

import math
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from scheduler.domain import (
    Forbidden,
    GreenlightError,
    InvalidJobSpec,
    InvalidJobSpecs,
    JobKind,
    JobSpec,
    Principal,
)
from scheduler.domain.jobs import effective_deadline
from scheduler.domain.submission import PendingJob
from scheduler.planning.consolidation import is_share
from scheduler.planning.snapshot import PlanningJob
from scheduler.planning.validation import SpecChecker
from scheduler.service import admission, dependencies
from scheduler.service.context import ServiceContext
from scheduler.service.jobs import MAX_BATCH, expected_power_w, may_submit, valid_group_id

ID_HEX = 16


@dataclass(frozen=True, slots=True)
class BatchSubmitted:
    """The jobs a batch created, ids in the order given, and the group they share (None when
    specs named groups of their own that differ)."""

    group_id: str | None
    ids: list[str]


def submit_batch(
    ctx: ServiceContext,
    specs: Sequence[JobSpec],
    principal: Principal,
    group_id: str | None = None,
) -> BatchSubmitted:
    """Validate and admit every spec, then insert all in one transaction, or none. Jobs share
    ``group_id`` (a spec's own wins; default: a new id). Raises Forbidden, InvalidJobSpec for
    the batch as a whole, or InvalidJobSpecs listing ``(index, field, message)`` for every
    spec refused."""
    may_submit(principal)
    if not specs:
        raise InvalidJobSpec("jobs", "must hold at least one job")
    if len(specs) > MAX_BATCH:
        raise InvalidJobSpec("jobs", f"holds {len(specs)} jobs; at most {MAX_BATCH} per batch")
    group_id = valid_group_id(group_id) or f"g-{uuid.uuid4().hex[:ID_HEX]}"
    now = ctx.clock.now()
    made = _pending(ctx, specs, principal, now, group_id)
    verdicts = admission.admit_planning(ctx, [_planning_job(ctx, p, now) for p in made], now)
    errors = [(i, "deadline", v.reason) for i, v in enumerate(verdicts) if v.reason is not None]
    if errors:
        raise InvalidJobSpecs(errors)
    try:
        ctx.store.add_pending(made, now=now, actor=f"api:{principal.tenant}", reason="submitted")
    except GreenlightError:
        admission.release(ctx, [p.id for p in made])
        raise
    ctx.counters["jobs_submitted_total"] += len(made)
    ctx.wake_planner.set()
    groups = {p.group_id for p in made}
    return BatchSubmitted(
        group_id=groups.pop() if len(groups) == 1 else None, ids=[p.id for p in made]
    )


def _pending(
    ctx: ServiceContext,
    specs: Sequence[JobSpec],
    principal: Principal,
    now: datetime,
    group_id: str,
) -> list[PendingJob]:
    """Each spec validated as ``submit`` would (a Forbidden tenant stops the batch at once;
    InvalidJobSpecs lists every refused spec), with its id, regions, power and group."""
    checker = SpecChecker(ctx.regions, now)
    raw = os.urandom(ID_HEX // 2 * len(specs)).hex()
    made: list[PendingJob] = []
    errors: list[tuple[int, str, str]] = []
    for index, spec in enumerate(specs):
        if spec.tenant != principal.tenant and not principal.is_admin:
            raise Forbidden(f"cannot submit for tenant {spec.tenant!r}")
        try:
            if spec.group_id is not None:
                valid_group_id(spec.group_id)
            allowed = checker.allowed_regions(spec)
            if spec.after:
                spec = dependencies.check_parents(ctx, spec, principal)
        except InvalidJobSpec as e:
            errors.append((index, e.field, e.message))
            continue
        made.append(
            PendingJob(
                id=f"j-{raw[index * ID_HEX : (index + 1) * ID_HEX]}",
                spec=spec,
                allowed_regions=allowed,
                expected_power_w=expected_power_w(ctx, spec),
                group_id=spec.group_id or group_id,
            )
        )
    if errors:
        raise InvalidJobSpecs(errors)
    return made


def _planning_job(ctx: ServiceContext, new: PendingJob, now: datetime) -> PlanningJob:
    """``admission.planning_job`` of the ``Job`` ``new`` stands for."""
    spec = new.spec
    gpus = spec.resources.gpus
    share = is_share(gpus)
    return PlanningJob(
        id=new.id,
        kind=spec.kind,
        gpus=0 if share else math.ceil(gpus),
        gpu_share=gpus if share else 0.0,
        power_w=new.expected_power_w or 0.0,
        duration_s=ctx.config.deployment_horizon_s
        if spec.kind is JobKind.DEPLOYMENT
        else spec.expected_duration_s or float(ctx.config.step_s),
        submitted_at=now,
        earliest_start=now,
        deadline=effective_deadline(spec, now),
        home_region=spec.home_region,
        allowed_regions=new.allowed_regions,
        policy=spec.policy,
        interruptible=spec.interruptible,
        priority=spec.priority,
        current_plan=None,
    )
