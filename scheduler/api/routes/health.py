"""Operational endpoints: liveness/readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from scheduler.api.deps import AdminPrincipal, ServiceDep
from scheduler.api.errors import health_status
from scheduler.api.metrics import ApiMetrics

router = APIRouter(tags=["operations"])


@router.get("/healthz", response_class=JSONResponse)
def healthz(service: ServiceDep) -> JSONResponse:
    """Health without auth: 200 when ok, 503 when degraded (database unreachable, ...)."""
    health = service.health()
    status = str(health.get("status", "degraded"))
    return JSONResponse(jsonable_encoder(health), status_code=health_status(status))


@router.get("/metrics", response_class=Response)
def metrics(request: Request, _admin: AdminPrincipal) -> Response:
    """Prometheus metrics (admin token: give the scraper one via its `authorization` config)."""
    api_metrics: ApiMetrics = request.app.state.metrics
    return Response(api_metrics.render(), media_type=ApiMetrics.content_type)
