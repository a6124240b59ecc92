"""Jobs: submit, list, inspect, cancel, and the energy reports workers send."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response
from pydantic_core import to_json

from scheduler.api import batch_body, job_pages
from scheduler.api.deps import CurrentPrincipal, ServiceDep
from scheduler.api.errors import HTTP_CREATED, error_responses
from scheduler.api.schemas import (
    MAX_OFFSET,
    EnergyAccepted,
    EnergyReportsIn,
    GroupCancelled,
    JobCreate,
    JobEventPublic,
    JobEventsPublic,
    JobIdPath,
    JobLogsPublic,
    JobPublic,
    JobsCreated,
    JobsPublic,
    TenantQuery,
)
from scheduler.api.slow_lane import slow_lane
from scheduler.collector import collector_paused
from scheduler.domain import JobKind, JobState

router = APIRouter(
    prefix="/v1/jobs", tags=["jobs"], responses=error_responses(401, 403, 404, 422, 503)
)

MAX_PAGE = 1000


@router.post(
    "",
    status_code=HTTP_CREATED,
    response_model=JobPublic,
    responses=error_responses(413),
)
def submit_job(body: JobCreate, service: ServiceDep, principal: CurrentPrincipal) -> Response:
    """Submit a job; it is planned into a low-carbon window before its deadline."""
    spec = body.to_spec(body.tenant or principal.tenant)
    # Serialized here, once: returning the model would have FastAPI validate it again
    # against response_model (a tenth of a submit's time, issue 8).
    return Response(
        JobPublic.of(service.submit(spec, principal)).model_dump_json(),
        status_code=HTTP_CREATED,
        media_type="application/json",
    )


@router.post(
    "/batch",
    status_code=HTTP_CREATED,
    response_model=JobsCreated,
    responses=error_responses(413),
    openapi_extra=batch_body.OPENAPI_REQUEST_BODY,
)
@slow_lane
def submit_jobs(
    body: Annotated[tuple[bytes, str | None], Depends(batch_body.raw_body)],
    service: ServiceDep,
    principal: CurrentPrincipal,
) -> Response:
    """Submit up to 10,000 jobs at once, all or none; they share a group id."""
    # The body is parsed here from its bytes in one pass, and the answer serialized once:
    # FastAPI's parse and response validation were a third of a 10,000-job batch (issue 8).
    with collector_paused():
        batch = batch_body.parse_jobs_create(*body)
        specs = [job.to_spec(job.tenant or principal.tenant) for job in batch.jobs]
        done = service.submit_batch(specs, principal, batch.group_id)
    created = {"group_id": done.group_id, "count": len(done.ids), "ids": done.ids}
    return Response(to_json(created), status_code=HTTP_CREATED, media_type="application/json")


@router.post("/cancel")
def cancel_group(
    group_id: Annotated[str, Query(min_length=1, max_length=64)],
    service: ServiceDep,
    principal: CurrentPrincipal,
) -> GroupCancelled:
    """Cancel every unfinished job of a group (an array or sweep) the caller may cancel."""
    return GroupCancelled(group_id=group_id, cancelled=service.cancel_group(group_id, principal))


@router.get("", response_model=JobsPublic)
def list_jobs(
    service: ServiceDep,
    principal: CurrentPrincipal,
    state: JobState | None = None,
    tenant: TenantQuery = None,
    kind: JobKind | None = None,
    group_id: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> Response:
    """List jobs visible to the caller, newest first, filtered, paged by offset or cursor."""
    page = service.list_jobs(
        principal,
        state=state,
        tenant=tenant,
        kind=kind,
        group_id=group_id,
        limit=limit,
        offset=offset,
        cursor=cursor,
    )
    # Serialized once, unvalidated models of the store's jobs (scheduler.api.job_pages).
    body = job_pages.page_json(
        page.jobs,
        count=page.count,
        limit=limit,
        offset=offset,
        next_cursor=page.next_cursor,
        count_capped=page.count_capped,
    )
    return Response(body, media_type="application/json")


@router.get("/{job_id}", response_model=JobPublic)
def get_job(job_id: JobIdPath, service: ServiceDep, principal: CurrentPrincipal) -> Response:
    """One job, with its current plan (region, start, forecast and baseline emissions), its
    count of functional units (steps, requests) and, for a deployment, where it answers."""
    job = service.get_job(job_id, principal)
    # Serialized once, as a submit's answer is: the model is built from the store's job.
    public = JobPublic.of(job, progress=service.job_progress(job.id))
    return Response(public.model_dump_json(), media_type="application/json")


@router.post("/{job_id}/cancel", responses=error_responses(409))
def cancel_job(job_id: JobIdPath, service: ServiceDep, principal: CurrentPrincipal) -> JobPublic:
    """Cancel a job that has not finished; stops it on the cluster if it runs."""
    return JobPublic.of(service.cancel(job_id, principal))


@router.get("/{job_id}/events")
def job_events(
    job_id: JobIdPath, service: ServiceDep, principal: CurrentPrincipal
) -> JobEventsPublic:
    """The job's history, oldest first: every state change and planning fact."""
    events = service.events(job_id, principal)
    return JobEventsPublic(data=[JobEventPublic.of(e) for e in events])


@router.get("/{job_id}/logs")
def job_logs(job_id: JobIdPath, service: ServiceDep, principal: CurrentPrincipal) -> JobLogsPublic:
    """The current attempt's output, as the cluster holds it."""
    return JobLogsPublic(job_id=job_id, logs=service.logs(job_id, principal))


@router.post("/{job_id}/energy", responses=error_responses(409, 413))
def post_energy(
    job_id: JobIdPath,
    body: EnergyReportsIn,
    service: ServiceDep,
    principal: CurrentPrincipal,
) -> EnergyAccepted:
    """Record a worker's energy reports (idempotent by attempt, device and interval start)."""
    reports = [r.to_domain(job_id) for r in body.reports]
    accepted, duplicates = service.record_energy(job_id, principal, reports)
    return EnergyAccepted(accepted=accepted, duplicates=duplicates)
