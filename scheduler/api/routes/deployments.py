"""Deployments: the endpoint a worker reports, and where a deployment answers now."""

from __future__ import annotations

from fastapi import APIRouter

from scheduler.api.deployment_schemas import (
    DeploymentEndpointPublic,
    EndpointIn,
    EndpointRecorded,
    RelocationPublic,
    RelocationsPublic,
)
from scheduler.api.deps import CurrentPrincipal, ServiceDep
from scheduler.api.errors import error_responses
from scheduler.api.schemas import JobIdPath

router = APIRouter(prefix="/v1", responses=error_responses(401, 403, 404, 422, 503))


@router.post("/jobs/{job_id}/endpoint", tags=["jobs"], responses=error_responses(409, 413))
def post_endpoint(
    job_id: JobIdPath, body: EndpointIn, service: ServiceDep, principal: CurrentPrincipal
) -> EndpointRecorded:
    """Record where the caller's copy of a deployment answers (its attempt token)."""
    changed = service.record_endpoint(job_id, principal, body.endpoint)
    return EndpointRecorded(
        job_id=job_id, endpoint=body.endpoint.strip().rstrip("/"), changed=changed
    )


@router.get("/deployments/{job_id}/endpoint", tags=["deployments"])
def get_endpoint(
    job_id: JobIdPath, service: ServiceDep, principal: CurrentPrincipal
) -> DeploymentEndpointPublic:
    """Where the deployment answers now; a load balancer polls this to follow moves."""
    found = service.deployment_endpoint(job_id, principal)
    return DeploymentEndpointPublic(
        job_id=found.job_id,
        endpoint=found.endpoint,
        region=found.region,
        state=found.state,
        updated_at=found.updated_at,
        moving_to=found.moving_to,
    )


@router.get("/deployments/{job_id}/relocations", tags=["deployments"])
def get_relocations(
    job_id: JobIdPath, service: ServiceDep, principal: CurrentPrincipal
) -> RelocationsPublic:
    """The deployment's completed moves: expected saving, and measured saving on actuals."""
    views = service.relocations(job_id, principal)
    return RelocationsPublic(
        job_id=job_id,
        data=[
            RelocationPublic.of(v.relocation, v.measured_saving_g, v.measured_saving_pct)
            for v in views
        ],
    )
