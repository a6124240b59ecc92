"""Operational endpoints: liveness/readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from scheduler.api.deps import AdminPrincipal, ServiceDep
from scheduler.api.errors import error_responses, health_status
from scheduler.api.metrics import ApiMetrics
from scheduler.api.schemas import HealthPublic

router = APIRouter(tags=["operations"])


@router.get(
    "/healthz",
    response_class=JSONResponse,
    response_model=HealthPublic,
    responses={503: {"model": HealthPublic, "description": "Database unreachable"}},
)
def healthz(service: ServiceDep) -> JSONResponse:
    """Health without auth: 200 when serving (ok or degraded), 503 when the database is down.
    Never carries a raw database error: the caller is not authenticated."""
    health = service.health()
    status = str(health.get("status", "degraded"))
    return JSONResponse(jsonable_encoder(health), status_code=health_status(status))


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"content": {"text/plain": {"schema": {"type": "string"}}}},
        **error_responses(401, 403, 503),
    },
)
def metrics(request: Request, _admin: AdminPrincipal) -> Response:
    """Prometheus metrics (admin token: give the scraper one via its `authorization` config)."""
    api_metrics: ApiMetrics = request.app.state.metrics
    return Response(api_metrics.render(), media_type=ApiMetrics.content_type)
