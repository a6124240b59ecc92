"""Dependency aliases for routes: the service, and who is calling.

Auth is ``Authorization: Bearer <token>``; the service checks the secret against stored hashes
(a verified user or admin token is remembered for a few seconds: ``scheduler.api.token_cache``).
Missing or unknown tokens raise Unauthorized (401); a non-admin on an admin route, Forbidden
(403). The service is the app's (``app.state.service``), set by ``create_app``: no globals.
"""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from scheduler.api.token_cache import TokenCache
from scheduler.domain import Forbidden, Principal, Unauthorized
from scheduler.service import GreenlightService

# auto_error=False: a missing header becomes our Unauthorized (one error format, WWW-Authenticate)
# rather than FastAPI's own response; the scheme still shows in /docs for "Authorize".
_bearer = HTTPBearer(auto_error=False, description="An API token: `greenlight token create`")


# Async, as is ``get_principal``: a sync dependency runs in the thread pool, a hop (and a wait
# for the GIL) per dependency per request, the largest share of a submit's latency at 32 clients.
async def get_service(request: Request) -> GreenlightService:
    return cast(GreenlightService, request.app.state.service)


ServiceDep = Annotated[GreenlightService, Depends(get_service)]


async def get_principal(
    request: Request,
    service: ServiceDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The caller. Raises Unauthorized without a bearer token or with an unknown one. User and
    admin tokens are verified against the store at most every few seconds (``TokenCache``):
    a cached one on the event loop, the store's lookup in the thread pool."""
    if credentials is None or not credentials.credentials:
        raise Unauthorized("missing bearer token: send 'Authorization: Bearer <token>'")
    cache = getattr(request.app.state, "token_cache", None)
    if cache is None:
        cache = request.app.state.token_cache = TokenCache()
    secret, counters = credentials.credentials, service.ctx.counters
    hit = cache.cached(secret, counters)
    if hit is not None:
        return hit
    return await run_in_threadpool(cache.principal, secret, counters, service.authenticate)


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


async def get_admin(principal: CurrentPrincipal) -> Principal:
    """The caller, who must hold an admin token. Raises Forbidden otherwise."""
    if not principal.is_admin:
        raise Forbidden("this needs an admin token")
    return principal


AdminPrincipal = Annotated[Principal, Depends(get_admin)]
