"""Read models for regions, forecasts and the savings report."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from scheduler.domain import (
    Forbidden,
    Forecast,
    InvalidJobSpec,
    Job,
    JobState,
    Principal,
    ProviderError,
    Region,
    SeriesKind,
)
from scheduler.forecasts.accuracy import forecast_error_by_lead
from scheduler.planning.snapshot import LeadError
from scheduler.planning.window import best_window
from scheduler.reports.aggregate import build_aggregate_report, span
from scheduler.reports.savings import (
    GROUPINGS,
    PERIODS,
    ReportFilters,
    SavingsReport,
    build_savings_report,
)
from scheduler.service.context import ServiceContext

ACCURACY_LOOKBACK = timedelta(days=7)
# Savings reports over more counted jobs than this come from SQL sums, without per-job rows.
EXACT_MAX_JOBS = 2_000


@dataclass(frozen=True, slots=True, kw_only=True)
class RegionStatus:
    region: Region
    last_refresh: datetime | None
    horizon_end: datetime | None
    stale: bool
    last_error: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class ForecastView:
    region: Region
    forecast: Forecast | None
    stale: bool
    age_s: float | None
    best_start: datetime | None
    best_end: datetime | None
    window_s: float


def _stale(ctx: ServiceContext, forecast: Forecast | None, now: datetime) -> bool:
    return (
        forecast is None
        or forecast.age_s(now) > ctx.config.forecast_max_age_s
        or (forecast.end is not None and forecast.end <= now)
    )


def regions(ctx: ServiceContext) -> list[RegionStatus]:
    now = ctx.clock.now()
    out = []
    for region in ctx.regions.values():
        latest = ctx.store.latest_forecast(region.grid_zone, now, provider=region.provider)
        out.append(
            RegionStatus(
                region=region,
                last_refresh=latest.issued_at if latest else None,
                horizon_end=latest.end if latest else None,
                stale=_stale(ctx, latest, now),
                last_error=ctx.last_errors.get(region.name),
            )
        )
    return out


def forecast(ctx: ServiceContext, region_name: str, window_s: float = 3600.0) -> ForecastView:
    """The latest forecast for a region and its lowest-carbon window of ``window_s``."""
    region = ctx.region(region_name)
    now = ctx.clock.now()
    latest = ctx.store.latest_forecast(region.grid_zone, now, provider=region.provider)
    best = None
    if latest is not None and latest.end is not None and latest.end > now:
        best = best_window(latest, now, window_s, ctx.config.step_s)
    return ForecastView(
        region=region,
        forecast=latest,
        stale=_stale(ctx, latest, now),
        age_s=latest.age_s(now) if latest else None,
        best_start=best[0] if best else None,
        best_end=best[1] if best else None,
        window_s=window_s,
    )


def forecast_accuracy(ctx: ServiceContext, region_name: str) -> list[LeadError]:
    """Mean absolute error by lead time of the last week's forecasts against actuals."""
    region = ctx.region(region_name)
    now = ctx.clock.now()
    issued = ctx.store.forecasts_between(
        region.grid_zone, now - ACCURACY_LOOKBACK, now, provider=region.provider
    )
    actuals = ctx.store.actuals(
        region.grid_zone, now - ACCURACY_LOOKBACK, now, provider=region.provider
    )
    if not issued or actuals is None:
        return []
    return forecast_error_by_lead(issued, actuals)


def savings_report(
    ctx: ServiceContext,
    principal: Principal,
    *,
    tenant: str | None = None,
    region: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    period: str = "day",
    group_id: str | None = None,
    group_by: str | None = None,
) -> SavingsReport:
    """Emissions vs the run-now baseline; users see their own tenant, admins any.

    Up to ``EXACT_MAX_JOBS`` counted jobs, every job is priced on its own and listed; above,
    the database sums energy per hour and the report has totals only
    (``scheduler.reports.aggregate``), so its cost follows the hours covered, not the jobs.
    """
    if not principal.is_admin:
        if principal.role.value == "job" or (tenant is not None and tenant != principal.tenant):
            raise Forbidden("the savings report of other tenants is for admins")
        tenant = principal.tenant
    if region is not None:
        ctx.region(region)
    if period not in PERIODS:
        raise InvalidJobSpec("period", f"must be one of {', '.join(PERIODS)}")
    if group_by is not None and group_by not in GROUPINGS:
        raise InvalidJobSpec("group_by", f"must be one of {', '.join(GROUPINGS)}")
    split = group_by if group_by in ("kind", "group") else None
    step_s = float(ctx.config.step_s)
    filters = ReportFilters(tenant=tenant, region=region, group_id=group_id)
    now = ctx.clock.now()
    ctx.store.refresh_savings_rollup(now, step_s)
    counts = ctx.store.savings_job_counts(
        tenant=tenant,
        region=region,
        group_id=group_id,
        start=start,
        end=end,
        split=split,
        now=now,
        step_s=step_s,
    )
    if sum(c.jobs for c in counts) > EXACT_MAX_JOBS:
        buckets = ctx.store.savings_energy_buckets(
            tenant=tenant, region=region, group_id=group_id, start=start, end=end, split=split
        )
        shared = ctx.store.savings_shared_runs(tenant=tenant, region=region, group_id=group_id)
        covered = span(buckets)
        if covered is not None and shared:  # the packing credit prices the shared runs' hours
            covered = (
                min(covered[0], *(min(b.started_at, b.first_interval_start) for b in shared)),
                max(covered[1], now),
            )
        actuals, forecasts = (
            ({}, {}) if covered is None else _intensity_between(ctx, covered[0], covered[1], now)
        )
        return replace(
            build_aggregate_report(
                buckets=buckets,
                counts=counts,
                regions=ctx.regions,
                actuals=actuals,
                forecasts=forecasts,
                now=now,
                start=start,
                end=end,
                period=period,
                group_by=group_by,
                embodied=ctx.config.embodied,
                embodied_by_region=ctx.config.embodied_by_region,
                shared=shared,
                idle_gpu_w=ctx.config.idle_gpu_w,
            ),
            filters=filters,
        )
    jobs, _ = ctx.store.list_jobs(
        tenant=tenant,
        group_id=group_id,
        limit=1_000_000,
        states=[
            JobState.RUNNING,
            JobState.SUCCEEDED,
            JobState.FAILED,
            JobState.CANCELLED,
            JobState.SUSPENDED,
            JobState.RETRYING,
            JobState.RELOCATING,
        ],
    )
    jobs = [j for j in jobs if j.started_at is not None and (region is None or j.region == region)]
    reports = ctx.store.energy_reports([j.id for j in jobs])
    actuals, forecasts = _intensity_for(ctx, jobs, now)
    return replace(
        build_savings_report(
            jobs=jobs,
            energy_reports=reports,
            regions=ctx.regions,
            actuals=actuals,
            forecasts=forecasts,
            now=now,
            start=start,
            end=end,
            period=period,
            group_by=group_by,
            step_s=step_s,
            embodied=ctx.config.embodied,
            embodied_by_region=ctx.config.embodied_by_region,
            progress=ctx.store.job_progress([j.id for j in jobs]),
            idle_gpu_w=ctx.config.idle_gpu_w,
        ),
        filters=filters,
    )


def _intensity_for(
    ctx: ServiceContext,
    jobs: list[Job],
    now: datetime,
) -> tuple[dict[str, Forecast], dict[str, Forecast]]:
    """Actuals per zone over the span the jobs and their baselines cover, backfilled from the
    provider when the store lacks them (the refresher keeps only a recent window)."""
    if not jobs:
        return {}, {}
    first = min(j.created_at for j in jobs) - timedelta(hours=1)
    last = max((j.finished_at or now) for j in jobs) + timedelta(hours=1)
    return _intensity_between(ctx, first, last, now)


def _intensity_between(
    ctx: ServiceContext,
    first: datetime,
    last: datetime,
    now: datetime,
) -> tuple[dict[str, Forecast], dict[str, Forecast]]:
    actuals: dict[str, Forecast] = {}
    forecasts: dict[str, Forecast] = {}
    for name, region in ctx.regions.items():
        zone = region.grid_zone
        series = ctx.store.actuals(zone, first, last, provider=region.provider)
        if _uncovered(series, first, min(last, now)) and name in ctx.providers:
            try:
                fetched = ctx.providers[name].actuals(zone, first, min(last, now))
                ctx.store.append_forecast(fetched)
                series = ctx.store.actuals(zone, first, last, provider=region.provider)
            except ProviderError as e:
                ctx.last_errors[name] = str(e)
        if series is not None:
            actuals[zone] = series
        latest = ctx.store.latest_forecast(zone, now, SeriesKind.FORECAST, provider=region.provider)
        if latest is not None:
            forecasts[zone] = latest
    return actuals, forecasts


def _uncovered(series: Forecast | None, start: datetime, end: datetime) -> bool:
    return (
        series is None
        or series.start is None
        or series.start > start
        or (series.end is not None and series.end < end)
    )
