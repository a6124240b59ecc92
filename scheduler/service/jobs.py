"""Job use cases called by the API: submit, read, cancel, logs (energy: service/energy.py)."""

from __future__ import annotations

import dataclasses
import logging
import uuid

from scheduler.domain import (
    DispatchError,
    Forbidden,
    InvalidJobSpec,
    InvalidTransition,
    Job,
    JobEvent,
    JobKind,
    JobNotFound,
    JobSpec,
    JobState,
    Principal,
    Role,
)
from scheduler.planning.validation import validate_spec
from scheduler.service.context import ServiceContext
from scheduler.service.cycles import refusal_reason

log = logging.getLogger(__name__)


def expected_power_w(ctx: ServiceContext, spec: JobSpec) -> float:
    """The spec's own figure, else base + per-GPU + per-core power from the configuration."""
    if spec.expected_power_w is not None:
        return spec.expected_power_w
    cfg = ctx.config
    return cfg.base_w + spec.resources.gpus * cfg.gpu_w + spec.resources.cpus * cfg.cpu_core_w


def submit(ctx: ServiceContext, spec: JobSpec, principal: Principal) -> Job:
    """Validate, check the deadline can be met with the capacity there is, and enqueue."""
    if principal.role is Role.JOB:
        raise Forbidden("a job token cannot submit jobs")
    if spec.tenant != principal.tenant and not principal.is_admin:
        raise Forbidden(f"cannot submit for tenant {spec.tenant!r}")
    now = ctx.clock.now()
    spec = validate_spec(spec, ctx.regions, now)
    spec = dataclasses.replace(spec, expected_power_w=expected_power_w(ctx, spec))
    job = Job(id=f"j-{uuid.uuid4().hex[:16]}", spec=spec, state=JobState.PENDING,
              created_at=now, updated_at=now)
    reason = refusal_reason(ctx, job, now)
    if reason is not None:
        raise InvalidJobSpec("deadline", reason)
    ctx.store.add_job(job, JobEvent(
        job_id=job.id, at=now, kind="state", actor=f"api:{principal.tenant}",
        reason="submitted", to_state=JobState.PENDING))
    ctx.counters["jobs_submitted_total"] += 1
    log.info("job submitted", extra={"job_id": job.id, "tenant": spec.tenant})
    return job


def get_job(ctx: ServiceContext, job_id: str, principal: Principal) -> Job:
    """Another tenant's job reads as not found, so ids of others are not disclosed."""
    job = ctx.store.get_job(job_id)
    if not _may_see(principal, job):
        raise JobNotFound(job_id)
    return job


def _may_see(principal: Principal, job: Job) -> bool:
    if principal.is_admin:
        return True
    if principal.role is Role.JOB:
        return principal.job_id == job.id
    return principal.tenant == job.tenant


def list_jobs(
    ctx: ServiceContext, principal: Principal, *, state: JobState | None = None,
    tenant: str | None = None, kind: JobKind | None = None, limit: int = 50, offset: int = 0,
) -> tuple[list[Job], int]:
    if principal.role is Role.JOB:
        raise Forbidden("a job token cannot list jobs")
    if not principal.is_admin:
        if tenant is not None and tenant != principal.tenant:
            raise Forbidden(f"cannot list jobs of tenant {tenant!r}")
        tenant = principal.tenant
    if limit < 1 or limit > 1000:
        raise InvalidJobSpec("limit", "must be between 1 and 1000")
    if offset < 0:
        raise InvalidJobSpec("offset", "must be >= 0")
    return ctx.store.list_jobs(states=None if state is None else [state], tenant=tenant,
                               kind=kind, limit=limit, offset=offset)


def cancel(ctx: ServiceContext, job_id: str, principal: Principal) -> Job:
    """Cancel a job; a started one is stopped on its cluster first. Raises InvalidTransition
    for a finished job."""
    job = get_job(ctx, job_id, principal)
    if principal.role is Role.JOB:
        raise Forbidden("a job token cannot cancel jobs")
    now = ctx.clock.now()
    if job.state.terminal:
        raise InvalidTransition(job.id, job.state.value, JobState.CANCELLED.value)
    stopped = False
    if job.state.started and job.region and job.submission_id:
        try:
            stopped = ctx.dispatcher.stop(ctx.region(job.region), job.submission_id)
        except DispatchError as e:
            # The store records the intent; reconcile retries the stop if the run shows up.
            log.warning("stop failed for %s: %s", job.id, e)
    return ctx.store.transition(job.id, JobState.CANCELLED, JobEvent(
        job_id=job.id, at=now, kind="state", actor=f"api:{principal.tenant}",
        reason="cancelled by user" + (" (run stopped)" if stopped else ""),
        from_state=job.state, to_state=JobState.CANCELLED),
        expected_from=[job.state], finished_at=now if job.state.started else None)


def events(ctx: ServiceContext, job_id: str, principal: Principal) -> list[JobEvent]:
    get_job(ctx, job_id, principal)
    return ctx.store.events(job_id)


def logs(ctx: ServiceContext, job_id: str, principal: Principal) -> str:
    """The current attempt's output from the cluster; empty before dispatch."""
    job = get_job(ctx, job_id, principal)
    if not job.region or not job.submission_id:
        return ""
    return ctx.dispatcher.logs(ctx.region(job.region), job.submission_id)
