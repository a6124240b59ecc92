"""API tokens: admins issue them; the secret is returned once and stored hashed."""

from __future__ import annotations

from fastapi import APIRouter

from scheduler.api.deps import AdminPrincipal, ServiceDep
from scheduler.api.errors import HTTP_CREATED
from scheduler.api.schemas import TokenCreate, TokenPublic

router = APIRouter(prefix="/v1/tokens", tags=["tokens"])


@router.post("", status_code=HTTP_CREATED)
def create_token(body: TokenCreate, service: ServiceDep, _admin: AdminPrincipal) -> TokenPublic:
    """Issue a token for a tenant (admin); the response is the only time the secret is shown."""
    secret, token = service.create_token(
        tenant=body.tenant, role=body.role, name=body.name, job_id=body.job_id
    )
    return TokenPublic.of(secret, token)
