"""Regions: where jobs can run, and how fresh each one's carbon signal is."""

from __future__ import annotations

from fastapi import APIRouter

from scheduler.api.deps import CurrentPrincipal, ServiceDep
from scheduler.api.errors import error_responses
from scheduler.api.schemas import RegionPublic, RegionsPublic

router = APIRouter(prefix="/v1/regions", tags=["regions"], responses=error_responses(401, 503))


@router.get("")
def list_regions(service: ServiceDep, _principal: CurrentPrincipal) -> RegionsPublic:
    """Every region: provider, zone, capacity, last refresh, forecast horizon, staleness."""
    return RegionsPublic(data=[RegionPublic.of(s) for s in service.regions()])
