"""Bearer tokens: issued once in clear, stored only as a SHA-256 hash."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import datetime

from scheduler.domain import ApiToken, InvalidJobSpec, Principal, Role, Unauthorized
from scheduler.ports import TokenStore
from scheduler.service.context import ServiceContext

TOKEN_PREFIX = "glt_"


def hash_token(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def issue_token(ctx: ServiceContext, *, tenant: str, role: Role, name: str = "",
                job_id: str | None = None) -> tuple[str, ApiToken]:
    """A new random token; the clear secret is returned once and never stored."""
    return new_token(ctx.store, ctx.clock.now(), tenant=tenant, role=role, name=name,
                     job_id=job_id)


def new_token(store: TokenStore, now: datetime, *, tenant: str, role: Role, name: str = "",
              job_id: str | None = None) -> tuple[str, ApiToken]:
    """Store a fresh token's hash; returns (secret, record). Raises InvalidJobSpec for an empty
    tenant."""
    if not tenant.strip():
        raise InvalidJobSpec("tenant", "must not be empty")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(id=uuid.uuid4().hex[:12], tenant=tenant, role=role,
                     token_hash=hash_token(secret), created_at=now, name=name, job_id=job_id)
    store.add_token(token)
    return secret, token


def authenticate(ctx: ServiceContext, secret: str) -> Principal:
    """Raises Unauthorized for an unknown, revoked or expired token."""
    token = ctx.store.token_by_hash(hash_token(secret)) if secret else None
    if token is None or token.revoked:
        raise Unauthorized("invalid or revoked token")
    if token.expires_at is not None and token.expires_at <= ctx.clock.now():
        raise Unauthorized("token expired")
    return Principal(tenant=token.tenant, role=token.role, token_id=token.id, job_id=token.job_id)
