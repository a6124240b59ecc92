"""Forecasts: a region's latest carbon-intensity forecast, its accuracy, and manual refresh."""

from __future__ import annotations

from fastapi import APIRouter

from scheduler.api.deps import AdminPrincipal, CurrentPrincipal, ServiceDep
from scheduler.api.errors import error_responses
from scheduler.api.schemas import (
    ForecastAccuracyPublic,
    ForecastPublic,
    ForecastPullPublic,
    RegionPath,
    RegionQuery,
)

router = APIRouter(
    prefix="/v1/forecasts", tags=["forecasts"], responses=error_responses(401, 404, 422, 503)
)


@router.post("/pull", responses=error_responses(403))
def pull_forecasts(
    service: ServiceDep,
    _admin: AdminPrincipal,
    region: RegionQuery = None,
) -> ForecastPullPublic:
    """Fetch fresh forecasts now, for one region or all (admin); per-region outcome."""
    return ForecastPullPublic(results=service.pull_forecasts(region))


@router.get("/{region}")
def get_forecast(
    region: RegionPath, service: ServiceDep, _principal: CurrentPrincipal
) -> ForecastPublic:
    """The region's latest forecast (gCO2e/kWh), its age, staleness and best window."""
    return ForecastPublic.of(service.forecast(region))


@router.get("/{region}/accuracy")
def get_accuracy(
    region: RegionPath,
    service: ServiceDep,
    _principal: CurrentPrincipal,
) -> ForecastAccuracyPublic:
    """Mean absolute forecast error by lead time, forecasts vs stored actuals."""
    return ForecastAccuracyPublic.of(region, service.forecast_accuracy(region))
