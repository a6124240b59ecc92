"""Bearer tokens: issued once in clear, stored only as a SHA-256 hash.

Worker credentials. The dispatch never writes a lasting secret where Ray records it (job
info, the entrypoint that exports it and the log line that shows that, agent logs). It hands
the worker a *bootstrap* credential instead (``glb_...``): one random nonce, stored hashed,
bound to one job attempt, that does nothing but buy that attempt's token at
``POST /v1/tokens/exchange``, once, within BOOTSTRAP_TTL_S. What Ray keeps is then worthless.
If a used bootstrap is presented again, someone else had it: every token of that attempt is
revoked (the runner then stops reporting, which shows in its log).

An attempt token (role ``job``) may report that attempt's energy and read its job. It works
while the attempt runs and for ATTEMPT_GRACE_S after it ends (the final report, retried
through a short outage); then, or once revoked, it is refused.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import datetime, timedelta

from scheduler.domain import (
    ApiToken,
    InvalidJobSpec,
    Job,
    JobNotFound,
    Principal,
    Role,
    Unauthorized,
)
from scheduler.domain.energy import ATTEMPT_GRACE_S
from scheduler.domain.tokens import TokenNotFound
from scheduler.ports import TokenStore
from scheduler.service.context import ServiceContext
from scheduler.service.energy import attempt_open, attempt_run, wall_duration

TOKEN_PREFIX = "glt_"
BOOTSTRAP_PREFIX = "glb_"
# A dispatched job may wait in Ray's queue before its runner starts and exchanges the
# bootstrap: as long as the service lets a run stay pending, plus a margin.
BOOTSTRAP_MARGIN_S = 300.0


def hash_token(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "replace")).hexdigest()


def issue_token(
    ctx: ServiceContext, *, tenant: str, role: Role, name: str = "", job_id: str | None = None
) -> tuple[str, ApiToken]:
    """A new random token; the clear secret is returned once and never stored. Raises
    InvalidJobSpec for a bootstrap role or a job token without its job."""
    if role is Role.BOOTSTRAP:
        raise InvalidJobSpec("role", "bootstrap credentials are issued by the dispatch only")
    if role is Role.JOB:
        if not job_id:
            raise InvalidJobSpec("job_id", "is required for a job token")
        job = ctx.store.get_job(job_id)
        return new_token(
            ctx.store,
            ctx.clock.now(),
            tenant=job.tenant,
            role=role,
            name=name,
            job_id=job.id,
            attempt=job.attempt,
        )
    return new_token(ctx.store, ctx.clock.now(), tenant=tenant, role=role, name=name)


def issue_bootstrap(ctx: ServiceContext, job: Job) -> str:
    """A one-time credential for ``job``'s current attempt, to hand the worker through Ray;
    returns its secret. Only its hash is stored."""
    ttl_s = ctx.config.pending_timeout_s + BOOTSTRAP_MARGIN_S
    secret, _ = new_token(
        ctx.store,
        ctx.clock.now(),
        tenant=job.tenant,
        role=Role.BOOTSTRAP,
        name=f"bootstrap {job.submission_id}",
        job_id=job.id,
        attempt=job.attempt,
        expires_at=ctx.clock.now() + timedelta(seconds=ttl_s),
        prefix=BOOTSTRAP_PREFIX,
    )
    return secret


def exchange_bootstrap(ctx: ServiceContext, secret: str) -> tuple[str, ApiToken]:
    """Trade a bootstrap credential for its attempt's token (once). Raises Unauthorized for an
    unknown, expired or already used one; a reuse also revokes that attempt's tokens."""
    now = ctx.clock.now()
    token = ctx.store.token_by_hash(hash_token(secret)) if secret else None
    if token is None or token.role is not Role.BOOTSTRAP or token.job_id is None:
        raise Unauthorized("invalid bootstrap credential")
    if not ctx.store.consume_token(token.id, now):
        if token.revoked:
            ctx.store.revoke_attempt_tokens(token.job_id, token.attempt)
            raise Unauthorized(
                "bootstrap credential already used; the attempt's tokens are revoked"
            )
        raise Unauthorized("bootstrap credential expired")
    return new_token(
        ctx.store,
        now,
        tenant=token.tenant,
        role=Role.JOB,
        name=f"attempt {token.job_id}-{token.attempt}",
        job_id=token.job_id,
        attempt=token.attempt,
    )


def new_token(
    store: TokenStore,
    now: datetime,
    *,
    tenant: str,
    role: Role,
    name: str = "",
    job_id: str | None = None,
    attempt: int | None = None,
    expires_at: datetime | None = None,
    prefix: str = TOKEN_PREFIX,
) -> tuple[str, ApiToken]:
    """Store a fresh token's hash; returns (secret, record). Raises InvalidJobSpec for an empty
    tenant."""
    if not tenant.strip():
        raise InvalidJobSpec("tenant", "must not be empty")
    secret = prefix + secrets.token_urlsafe(32)
    token = ApiToken(
        id=uuid.uuid4().hex[:12],
        tenant=tenant,
        role=role,
        token_hash=hash_token(secret),
        created_at=now,
        name=name,
        job_id=job_id,
        attempt=attempt,
        expires_at=expires_at,
    )
    store.add_token(token)
    return secret, token


def authenticate(ctx: ServiceContext, secret: str) -> Principal:
    """Raises Unauthorized for an unknown, revoked or expired token, a bootstrap credential
    (good for the exchange only), or an attempt token past its attempt's grace."""
    token = ctx.store.token_by_hash(hash_token(secret)) if secret else None
    if token is None or token.revoked:
        raise Unauthorized("invalid or revoked token")
    now = ctx.clock.now()
    if token.expires_at is not None and token.expires_at <= now:
        raise Unauthorized("token expired")
    if token.role is Role.BOOTSTRAP:
        raise Unauthorized("a bootstrap credential is only good for POST /v1/tokens/exchange")
    if token.role is Role.JOB:
        if token.job_id is None:
            raise Unauthorized("a job token without its job")
        try:
            job = ctx.store.get_job(token.job_id)
        except JobNotFound:
            raise Unauthorized("token expired: its job is gone") from None
        # A job token from before attempts were recorded belongs to the job's current attempt.
        attempt = token.attempt if token.attempt is not None else job.attempt
        run = attempt_run(job, ctx.store.events(job.id), attempt)
        if not attempt_open(run, now, wall_duration(ctx.clock, ATTEMPT_GRACE_S)):
            raise Unauthorized("token expired: its job attempt has ended")
    return Principal(
        tenant=token.tenant,
        role=token.role,
        token_id=token.id,
        job_id=token.job_id,
        attempt=token.attempt,
    )


def list_tokens(
    store: TokenStore, *, tenant: str | None = None, include_workers: bool = False
) -> list[ApiToken]:
    """Tokens (never secrets), oldest first: user and admin ones, plus worker and bootstrap ones
    when ``include_workers``."""
    tokens = store.list_tokens(tenant)
    if include_workers:
        return tokens
    return [t for t in tokens if t.role in (Role.USER, Role.ADMIN)]


def revoke_token(store: TokenStore, token_id: str) -> ApiToken:
    """Revoke one token by id; returns it as it now stands. Raises TokenNotFound."""
    token = store.get_token(token_id)
    if token is None:
        raise TokenNotFound(token_id)
    store.revoke_token(token_id)
    return store.get_token(token_id) or token
