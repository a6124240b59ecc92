"""The FastAPI application factory. No module-level app, settings or service: call
:func:`create_app` with a built service (``scheduler.bootstrap.build_service``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import anyio.to_thread
from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from fastapi_offline import FastAPIOffline

from scheduler.api.errors import error_responses, install_error_handlers
from scheduler.api.metrics import ApiMetrics
from scheduler.api.middleware import DEFAULT_MAX_BODY_BYTES, BodySizeLimit, RequestTelemetry
from scheduler.api.routes import ROUTERS
from scheduler.api.slow_lane import DEFAULT_SLOW_THREADS, open_lane
from scheduler.service import GreenlightService

DESCRIPTION = """\
Greenlight shifts training jobs and deployments into low-carbon windows and regions.

Authenticate with `Authorization: Bearer <token>` (`greenlight token create`). Every endpoint
needs a token except `/healthz` and the docs; `/metrics` and `POST /v1/forecasts/pull` need an
admin token. Times are ISO-8601 with an offset; responses are UTC.

Every error has one body, `{"code": ..., "detail": ...}` (`ErrorPublic`); a 422's `detail`
lists each refused field. Request bodies over 1 MiB (configurable) get 413. With the database
unreachable, requests get 503 with `Retry-After`.
"""

# Threads for the synchronous routes (``Settings.api_threads`` says why so few).
DEFAULT_THREADS = 4


def create_app(
    service: GreenlightService,
    *,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    threads: int = DEFAULT_THREADS,
    slow_threads: int = DEFAULT_SLOW_THREADS,
) -> FastAPI:
    """A new app serving ``service``; each app has its own metrics registry. Request bodies
    over ``max_body_bytes`` are refused with 413 before any route parses them; ``threads``
    run the synchronous routes, ``slow_threads`` those that take seconds (``slow_lane``; both
    set when the app starts, for the server's event loop)."""
    # /docs and /redoc load Swagger UI and ReDoc from files inside an installed package
    # (fastapi-offline), never from a CDN: the docs work on an air-gapped cluster.
    app = FastAPIOffline(
        title="Greenlight",
        version="0.1.0",
        description=DESCRIPTION,
        static_url="/docs-assets",
        lifespan=_lifespan(threads, slow_threads),
    )
    metrics = ApiMetrics(service)
    app.state.service = service
    app.state.metrics = metrics
    install_error_handlers(app)
    for router in ROUTERS:
        _document_errors(router)
        app.include_router(router)
    app.add_middleware(BodySizeLimit, max_body_bytes=max_body_bytes)
    # Added last, so outermost: the telemetry sees the 413s too.
    app.add_middleware(RequestTelemetry, metrics=metrics)
    return app


def _lifespan(
    threads: int, slow_threads: int
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        anyio.to_thread.current_default_thread_limiter().total_tokens = threads
        open_lane(slow_threads)
        yield

    return lifespan


def _document_errors(router: APIRouter) -> None:
    """Give every route of ``router`` that documents no error of its own the shared ones, so
    the OpenAPI document lists each status a client can get, all with ``ErrorPublic``.
    Idempotent: a route that documents an error is left alone."""
    for route in router.routes:
        if not isinstance(route, APIRoute) or not route.include_in_schema:
            continue
        if route.path == "/healthz" or any(int(code) >= 400 for code in route.responses):
            continue
        codes = [401, 403, 503]
        if route.dependant.query_params or route.dependant.path_params:
            codes.append(422)
        if route.body_field is not None:
            codes += [413, 422]
        route.responses.update(error_responses(*sorted(set(codes))))
