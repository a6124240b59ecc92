"""The refresh cycle: pull forecasts and actuals, then re-measure each region's forecast error."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from scheduler.forecasts.accuracy import forecast_error_by_lead
from scheduler.forecasts.refresh import RefreshStatus
from scheduler.service.context import ServiceContext

log = logging.getLogger(__name__)
ERROR_LOOKBACK = timedelta(days=3)


def refresh(
    ctx: ServiceContext, regions: list[str] | None = None, *, force: bool = False
) -> dict[str, str]:
    """Refresh the regions' forecasts; returns region -> "ok" or what went wrong.

    Provider faults never raise here: they are recorded per region and the planner falls back.
    """
    if ctx.refresher is None:
        return {}
    now = ctx.clock.now()
    result = ctx.refresher.refresh(now, regions, force=force)
    out: dict[str, str] = {}
    for name, outcome in result.regions.items():
        if outcome.ok and outcome.message:
            # A good forecast but failed actuals: shown where forecast errors show.
            ctx.last_errors[name] = outcome.message
            ctx.counters["actuals_refresh_errors_total"] += 1
            out[name] = outcome.status.value
        elif outcome.ok:
            if outcome.status is RefreshStatus.OK:  # a skip fetched nothing, fixed nothing
                ctx.last_errors.pop(name, None)
            out[name] = outcome.status.value
        else:
            message = outcome.message or outcome.status.value
            ctx.last_errors[name] = message
            ctx.counters["forecast_refresh_errors_total"] += 1
            out[name] = f"{outcome.status.value}: {message}"
    _measure_errors(ctx, now)
    return out


def _measure_errors(ctx: ServiceContext, now: datetime) -> None:
    """Forecast error by lead time per region, from what the store holds (for robust planning)."""
    for name, region in ctx.regions.items():
        issued = ctx.store.forecasts_between(
            region.grid_zone, now - ERROR_LOOKBACK, now, provider=region.provider
        )
        actuals = ctx.store.actuals(
            region.grid_zone, now - ERROR_LOOKBACK, now, provider=region.provider
        )
        if len(issued) < 2 or actuals is None:
            continue
        errors = forecast_error_by_lead(issued, actuals)
        if errors:
            ctx.forecast_error[name] = tuple(errors)
