"""Deployments' endpoints: recorded from their runners, read by clients and load balancers,
and each completed move judged against staying put.

A runner posts its copy's endpoint with its attempt's token (``POST /v1/jobs/{id}/endpoint``):
the serving copy's becomes the job's endpoint; a move's new copy's is health-checked before the
switch (``scheduler.service.moving``). ``GET /v1/deployments/{id}/endpoint`` is what a front
(a reverse proxy, a client) polls to follow moves.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from scheduler.domain import (
    EnergyReport,
    Forbidden,
    ForecastUnavailable,
    InvalidJobSpec,
    Job,
    JobKind,
    JobState,
    Principal,
    Role,
)
from scheduler.domain.deployments import Relocation, check_endpoint
from scheduler.planning.relocation import measured_saving
from scheduler.service.context import ServiceContext
from scheduler.service.jobs import get_job

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class DeploymentEndpoint:
    """Where a deployment answers now: ``endpoint`` None until its copy reported one;
    ``moving_to`` the region of a move in flight (the endpoint switches when it is healthy)."""

    job_id: str
    endpoint: str | None
    region: str | None
    state: JobState
    updated_at: datetime | None
    moving_to: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class RelocationView:
    """A completed move with its expected saving (over the horizon, on the forecast the
    decision used) and its measured one (on actuals, for the energy the new copy drew since:
    the same energy where it was, against where it went plus the old copy's overlap); the
    measured figures are None until actuals cover the energy."""

    relocation: Relocation
    measured_saving_g: float | None
    measured_saving_pct: float | None


def record_endpoint(ctx: ServiceContext, job_id: str, principal: Principal, endpoint: str) -> bool:
    """Record the endpoint of the caller's copy (an attempt token) or, for an admin, of the
    serving copy; True when it changed. Raises Forbidden, JobNotFound, InvalidJobSpec (not a
    URL), EndpointConflict (not a deployment, or a copy that no longer serves)."""
    if not (principal.is_admin or (principal.role is Role.JOB and principal.job_id == job_id)):
        raise Forbidden("only the job's own token may report its endpoint")
    checked = check_endpoint(endpoint)
    attempt = principal.attempt if principal.role is Role.JOB else None
    changed = ctx.store.set_endpoint(job_id, attempt, checked, ctx.clock.now())
    if changed:
        log.info("job %s attempt %s answers at %s", job_id, attempt, checked)
    return changed


def deployment_endpoint(
    ctx: ServiceContext, job_id: str, principal: Principal
) -> DeploymentEndpoint:
    """The deployment's current endpoint. Raises JobNotFound, InvalidJobSpec (a training job)."""
    job = _deployment(ctx, job_id, principal)
    return DeploymentEndpoint(
        job_id=job.id,
        endpoint=job.endpoint,
        region=job.region,
        state=job.state,
        updated_at=job.endpoint_updated_at,
        moving_to=job.move.to_region if job.move is not None else None,
    )


def relocations(ctx: ServiceContext, job_id: str, principal: Principal) -> list[RelocationView]:
    """The deployment's completed moves, oldest first, expected and measured. Raises
    JobNotFound, InvalidJobSpec (a training job)."""
    job = _deployment(ctx, job_id, principal)
    if not job.relocations:
        return []
    reports = ctx.store.energy_reports([job.id])
    out = []
    for i, moved in enumerate(job.relocations):
        until = job.relocations[i + 1].switched_at if i + 1 < len(job.relocations) else None
        out.append(_judged(ctx, moved, reports, until))
    return out


Profile = list[tuple[datetime, datetime, float]]


def move_profiles(
    moved: Relocation, reports: Sequence[EnergyReport], until: datetime | None
) -> tuple[Profile, Profile]:
    """What a move is judged on: the new copy's energy since the switch (until the next
    move's), and the old copy's from the move's start (the overlap), as (start, end, J)."""
    profile = [
        (r.interval_start, r.interval_end, r.energy_j)
        for r in reports
        if r.attempt == moved.new_attempt
        and r.interval_start >= moved.switched_at
        and (until is None or r.interval_start < until)
    ]
    overlap = [
        (r.interval_start, r.interval_end, r.energy_j)
        for r in reports
        if r.attempt == moved.old_attempt and r.interval_end > moved.started_at
    ]
    return profile, overlap


def _judged(
    ctx: ServiceContext,
    moved: Relocation,
    reports: Sequence[EnergyReport],
    until: datetime | None,
) -> RelocationView:
    profile, overlap = move_profiles(moved, reports, until)
    none = RelocationView(relocation=moved, measured_saving_g=None, measured_saving_pct=None)
    spans = [s for s, _, _ in (*profile, *overlap)] + [e for _, e, _ in (*profile, *overlap)]
    if not profile or moved.from_region not in ctx.regions or moved.to_region not in ctx.regions:
        return none
    start, end = min(spans), max(spans)
    source, target = ctx.regions[moved.from_region], ctx.regions[moved.to_region]
    from_actuals = ctx.store.actuals(source.grid_zone, start, end, provider=source.provider)
    to_actuals = ctx.store.actuals(target.grid_zone, start, end, provider=target.provider)
    if from_actuals is None or to_actuals is None:
        return none
    try:
        judged = measured_saving(
            profile,
            overlap,
            from_pue=source.pue,
            from_actuals=from_actuals,
            to_pue=target.pue,
            to_actuals=to_actuals,
        )
    except ForecastUnavailable:
        return none
    return RelocationView(
        relocation=moved,
        measured_saving_g=judged.saving_g,
        measured_saving_pct=judged.saving_pct,
    )


def _deployment(ctx: ServiceContext, job_id: str, principal: Principal) -> Job:
    job = get_job(ctx, job_id, principal)
    if job.kind is not JobKind.DEPLOYMENT:
        raise InvalidJobSpec("job_id", f"{job_id} is a {job.kind.value} job, not a deployment")
    return job
