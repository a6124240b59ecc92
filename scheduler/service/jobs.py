"""Job use cases called by the API: submit, read, cancel, logs (energy: service/energy.py).

A submit validates the spec (pure), asks the admission ledger whether the deadline can be met
(``scheduler.service.admission``: no queue is read), inserts the job with its first event in
one transaction, and wakes the planner; it never plans. Its cost does not depend on how many
jobs are queued. A batch does the same for up to ``MAX_BATCH`` specs, all or none.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime

from scheduler.domain import (
    PLANNABLE_STATES,
    DispatchError,
    Forbidden,
    GreenlightError,
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
from scheduler.service import admission, dependencies
from scheduler.service.context import ServiceContext

log = logging.getLogger(__name__)

MAX_BATCH = 10_000
MAX_PAGE = 1000
# An offset page counts its filter's jobs up to this many: beyond, the count says "at least"
# (``count_capped``), since counting a million rows costs more than the page itself.
COUNT_LIMIT = 1_000
MAX_GROUP_ID = 64


def expected_power_w(ctx: ServiceContext, spec: JobSpec) -> float:
    """The spec's own figure, else base + per-GPU + per-core power from the configuration."""
    if spec.expected_power_w is not None:
        return spec.expected_power_w
    cfg = ctx.config
    return cfg.base_w + spec.resources.gpus * cfg.gpu_w + spec.resources.cpus * cfg.cpu_core_w


def submit(ctx: ServiceContext, spec: JobSpec, principal: Principal) -> Job:
    """Validate, check the deadline can be met with the capacity there is (the ledger), and
    enqueue. Raises Forbidden, or InvalidJobSpec naming the field (``deadline`` when capacity
    refuses)."""
    may_submit(principal)
    now = ctx.clock.now()
    job = _new_job(ctx, spec, principal, now)
    verdict = admission.admit(ctx, [job], now)[0]
    if verdict.reason is not None:
        raise InvalidJobSpec("deadline", verdict.reason)
    try:
        ctx.store.add_job(job, _submitted(job, principal, now))
    except GreenlightError:
        admission.release(ctx, [job.id])
        raise
    ctx.counters["jobs_submitted_total"] += 1
    ctx.wake_planner.set()
    log.debug("job submitted", extra={"job_id": job.id, "tenant": job.tenant})
    return job


def may_submit(principal: Principal) -> None:
    if principal.role is Role.JOB:
        raise Forbidden("a job token cannot submit jobs")


def _new_job(
    ctx: ServiceContext,
    spec: JobSpec,
    principal: Principal,
    now: datetime,
    group_id: str | None = None,
) -> Job:
    """The job ``spec`` becomes: validated, power and group (its own, else ``group_id``)
    filled in, a fresh id, pending."""
    if spec.tenant != principal.tenant and not principal.is_admin:
        raise Forbidden(f"cannot submit for tenant {spec.tenant!r}")
    if spec.group_id is not None:
        valid_group_id(spec.group_id)
    spec = validate_spec(spec, ctx.regions, now)
    spec = dependencies.check_parents(ctx, spec, principal)
    spec = dataclasses.replace(
        spec, expected_power_w=expected_power_w(ctx, spec), group_id=spec.group_id or group_id
    )
    return Job(
        id=f"j-{uuid.uuid4().hex[:16]}",
        spec=spec,
        state=JobState.PENDING,
        created_at=now,
        updated_at=now,
    )


def valid_group_id(group_id: str | None) -> str | None:
    if group_id is not None and not (0 < len(group_id) <= MAX_GROUP_ID):
        raise InvalidJobSpec("group_id", f"must be 1 to {MAX_GROUP_ID} characters")
    return group_id


def _submitted(job: Job, principal: Principal, now: datetime) -> JobEvent:
    return JobEvent(
        job_id=job.id,
        at=now,
        kind="state",
        actor=f"api:{principal.tenant}",
        reason="submitted",
        to_state=JobState.PENDING,
    )


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


@dataclass(frozen=True, slots=True, kw_only=True)
class JobPage:
    """One page of jobs, newest first. ``count`` is the total before paging (None for a keyset
    page); ``next_cursor`` continues after the last job (None on the last page)."""

    jobs: list[Job]
    count: int | None
    next_cursor: str | None
    count_capped: bool = False


def list_jobs(
    ctx: ServiceContext,
    principal: Principal,
    *,
    state: JobState | None = None,
    tenant: str | None = None,
    kind: JobKind | None = None,
    group_id: str | None = None,
    limit: int = 50,
    offset: int = 0,
    cursor: str | None = None,
) -> JobPage:
    """Jobs the caller may see, by offset or by keyset (``cursor`` from a previous page: stable
    while jobs arrive, and as fast on the last page of a million as on the first). Raises
    Forbidden, or InvalidJobSpec for a bad limit, offset or cursor."""
    if principal.role is Role.JOB:
        raise Forbidden("a job token cannot list jobs")
    if not principal.is_admin:
        if tenant is not None and tenant != principal.tenant:
            raise Forbidden(f"cannot list jobs of tenant {tenant!r}")
        tenant = principal.tenant
    if limit < 1 or limit > MAX_PAGE:
        raise InvalidJobSpec("limit", f"must be between 1 and {MAX_PAGE}")
    if offset < 0:
        raise InvalidJobSpec("offset", "must be >= 0")
    if cursor is not None and offset:
        raise InvalidJobSpec("offset", "cannot be combined with cursor")
    after = None if cursor is None else decode_cursor(cursor)
    jobs, count = ctx.store.list_jobs(
        states=None if state is None else [state],
        tenant=tenant,
        kind=kind,
        group_id=group_id,
        limit=limit,
        offset=offset,
        after=after,
        count=after is None,
        count_limit=COUNT_LIMIT,
    )
    last = jobs[-1] if len(jobs) == limit else None
    return JobPage(
        jobs=jobs,
        count=count,
        next_cursor=None if last is None else encode_cursor(last.created_at, last.id),
        count_capped=count is not None and count >= COUNT_LIMIT,
    )


def encode_cursor(created_at: datetime, job_id: str) -> str:
    """The opaque keyset position after the job created at ``created_at`` with ``job_id``."""
    raw = f"{created_at.isoformat()}|{job_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """Raises InvalidJobSpec("cursor") for anything ``encode_cursor`` did not make."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        when, job_id = raw.split("|", 1)
        at = datetime.fromisoformat(when)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidJobSpec("cursor", "is not a cursor this service issued") from None
    if at.tzinfo is None or not job_id:
        raise InvalidJobSpec("cursor", "is not a cursor this service issued")
    return at, job_id


def cancel_group(ctx: ServiceContext, group_id: str, principal: Principal) -> list[str]:
    """Cancel every unfinished job of ``group_id`` the caller may cancel: the queued ones in
    one statement, the started ones each stopped on its cluster (as ``cancel``). Returns the
    ids cancelled. Raises Forbidden for a job token."""
    if principal.role is Role.JOB:
        raise Forbidden("a job token cannot cancel jobs")
    tenant = None if principal.is_admin else principal.tenant
    now = ctx.clock.now()
    done = ctx.store.cancel_queued(
        group_id=group_id,
        tenant=tenant,
        now=now,
        actor=f"api:{principal.tenant}",
        reason=f"cancelled by user (group {group_id})",
    )
    admission.release(ctx, done)
    unfinished = [s for s in JobState if s.started or s in PLANNABLE_STATES]
    tried: set[str] = set(done)
    while True:
        # Started jobs of a group are at most what the clusters run at once; a queued one
        # that changed state meanwhile is cancelled the same way.
        rest, _ = ctx.store.list_jobs(
            states=unfinished, tenant=tenant, group_id=group_id, limit=MAX_PAGE, count=False
        )
        rest = [j for j in rest if j.id not in tried]
        if not rest:
            return done
        for job in rest:
            tried.add(job.id)
            try:
                cancel(ctx, job.id, principal)
                done.append(job.id)
            except InvalidTransition:
                log.info("job %s finished while its group was cancelled", job.id)


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
    admission.release(ctx, [job.id])
    return ctx.store.transition(
        job.id,
        JobState.CANCELLED,
        JobEvent(
            job_id=job.id,
            at=now,
            kind="state",
            actor=f"api:{principal.tenant}",
            reason="cancelled by user" + (" (run stopped)" if stopped else ""),
            from_state=job.state,
            to_state=JobState.CANCELLED,
        ),
        expected_from=[job.state],
        finished_at=now if job.state.started else None,
    )


def events(ctx: ServiceContext, job_id: str, principal: Principal) -> list[JobEvent]:
    get_job(ctx, job_id, principal)
    return ctx.store.events(job_id)


def logs(ctx: ServiceContext, job_id: str, principal: Principal) -> str:
    """The current attempt's output from the cluster; empty before dispatch."""
    job = get_job(ctx, job_id, principal)
    if not job.region or not job.submission_id:
        return ""
    return ctx.dispatcher.logs(ctx.region(job.region), job.submission_id)
