"""Forecasts: a region's latest carbon-intensity forecast, its accuracy, and manual refresh."""

from __future__ import annotations

from fastapi import APIRouter

from scheduler.api.deps import AdminPrincipal, CurrentPrincipal, ServiceDep
from scheduler.api.schemas import ForecastAccuracyPublic, ForecastPublic, ForecastPullPublic

router = APIRouter(prefix="/v1/forecasts", tags=["forecasts"])


@router.post("/pull")
def pull_forecasts(
    service: ServiceDep,
    _admin: AdminPrincipal,
    region: str | None = None,
) -> ForecastPullPublic:
    """Fetch fresh forecasts now, for one region or all (admin); per-region outcome."""
    return ForecastPullPublic(results=service.pull_forecasts(region))


@router.get("/{region}")
def get_forecast(region: str, service: ServiceDep, _principal: CurrentPrincipal) -> ForecastPublic:
    """The region's latest forecast (gCO2e/kWh), its age, staleness and best window."""
    return ForecastPublic.of(service.forecast(region))


@router.get("/{region}/accuracy")
def get_accuracy(
    region: str,
    service: ServiceDep,
    _principal: CurrentPrincipal,
) -> ForecastAccuracyPublic:
    """Mean absolute forecast error by lead time, forecasts vs stored actuals."""
    return ForecastAccuracyPublic.of(region, service.forecast_accuracy(region))
