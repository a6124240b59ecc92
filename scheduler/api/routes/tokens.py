"""API tokens: admins issue, list and revoke them; workers exchange a bootstrap credential.

A secret is returned once, at creation, and stored only as a hash; listings never show one.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from scheduler.api.deps import AdminPrincipal, ServiceDep
from scheduler.api.errors import HTTP_CREATED, error_responses
from scheduler.api.schemas import (
    TenantQuery,
    TokenCreate,
    TokenIdPath,
    TokenInfoPublic,
    TokenPublic,
    TokensPublic,
)
from scheduler.domain import Unauthorized

router = APIRouter(
    prefix="/v1/tokens", tags=["tokens"], responses=error_responses(401, 403, 422, 503)
)

_bootstrap = HTTPBearer(
    auto_error=False,
    scheme_name="BootstrapCredential",
    description="A worker's one-time bootstrap credential (`glb_...`), exchanged once",
)


@router.post("", status_code=HTTP_CREATED, responses=error_responses(404, 413))
def create_token(body: TokenCreate, service: ServiceDep, _admin: AdminPrincipal) -> TokenPublic:
    """Issue a token for a tenant (admin); the response is the only time the secret is shown."""
    secret, token = service.create_token(
        tenant=body.tenant, role=body.role, name=body.name, job_id=body.job_id
    )
    return TokenPublic.of(secret, token)


@router.get("")
def list_tokens(
    service: ServiceDep,
    _admin: AdminPrincipal,
    tenant: TenantQuery = None,
    workers: Annotated[bool, Query(description="Include worker and bootstrap tokens")] = False,
) -> TokensPublic:
    """Tokens (admin), oldest first, without secrets: user and admin ones, optionally workers'."""
    tokens = service.list_tokens(tenant=tenant, include_workers=workers)
    return TokensPublic(data=[TokenInfoPublic.of(t) for t in tokens])


@router.post("/{token_id}/revoke", responses=error_responses(404))
def revoke_token(
    token_id: TokenIdPath, service: ServiceDep, _admin: AdminPrincipal
) -> TokenInfoPublic:
    """Revoke a token (admin): it is refused from now on. Revoking twice is harmless."""
    return TokenInfoPublic.of(service.revoke_token(token_id))


@router.post("/exchange", status_code=HTTP_CREATED)
def exchange_token(
    service: ServiceDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bootstrap)],
) -> TokenPublic:
    """Trade a worker's one-time bootstrap credential for its job attempt's token (once; a
    second use revokes the attempt's tokens)."""
    if credentials is None or not credentials.credentials:
        raise Unauthorized("missing bootstrap credential: send 'Authorization: Bearer glb_...'")
    secret, token = service.exchange_token(credentials.credentials)
    return TokenPublic.of(secret, token)
