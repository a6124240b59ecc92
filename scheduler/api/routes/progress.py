"""Progress: the functional units (SCI's R) a job's worker reports, steps or requests."""

from __future__ import annotations

from fastapi import APIRouter

from scheduler.api.deps import CurrentPrincipal, ServiceDep
from scheduler.api.errors import error_responses
from scheduler.api.schemas import JobIdPath, ProgressIn, ProgressPublic

router = APIRouter(
    prefix="/v1/jobs", tags=["jobs"], responses=error_responses(401, 403, 404, 409, 413, 422, 503)
)


@router.post("/{job_id}/progress")
def post_progress(
    job_id: JobIdPath, body: ProgressIn, service: ServiceDep, principal: CurrentPrincipal
) -> ProgressPublic:
    """Record the attempt's running total of steps or requests (a repeat changes nothing; a
    lower total, or an older attempt than the stored one, is a 409)."""
    progress, changed = service.record_progress(
        job_id, principal, attempt=body.attempt, units=body.units, unit=body.unit
    )
    return ProgressPublic(
        job_id=progress.job_id,
        attempt=progress.attempt,
        units=progress.units,
        unit=progress.unit,
        changed=changed,
    )
