"""Builds the planner's snapshot from the store: which jobs, what capacity, which carbon signal.

The carbon signal per region follows the fallback ladder: the latest forecast while it is fresh
enough, else the region's recent actuals repeated as a daily profile, else nothing (the region
is not priced; a job with no priced region runs now at home).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from scheduler.domain import (
    PLANNABLE_STATES,
    Forecast,
    IntensityPoint,
    Job,
    JobKind,
    JobState,
    Plan,
    SeriesKind,
    effective_deadline,
)
from scheduler.planning.consolidation import is_share
from scheduler.planning.packing import gpus_needed
from scheduler.planning.snapshot import Occupancy, PlanningJob, RegionState, Snapshot
from scheduler.service.context import ServiceContext

STARTED_STATES = (JobState.DISPATCHED, JobState.RUNNING, JobState.RELOCATING)
PROFILE_LOOKBACK = timedelta(hours=24)
# Plans on a forecast older than this share of the maximum age carry a note ("planned on a
# 3 h old forecast ..."): a forecast a refresh or two old is normal, not worth an event.
NOTE_AGE_SHARE = 1 / 3


@dataclass(frozen=True, slots=True, kw_only=True)
class Signal:
    """The series a region is priced on and, when it is not a fresh forecast, why."""

    series: Forecast
    note: str | None
    fallback: str | None  # None | "old-forecast" | "actuals-profile"


def all_jobs(ctx: ServiceContext, states: tuple[JobState, ...]) -> list[Job]:
    # No total: it would count the same rows a second time, every cycle.
    jobs, _ = ctx.store.list_jobs(states=states, limit=1_000_000, count=False)
    return jobs


def region_signal(ctx: ServiceContext, region_name: str, now: datetime) -> Signal | None:
    """The best usable series for a region at ``now``, or None when there is nothing usable."""
    zone, provider = ctx.regions[region_name].grid_zone, ctx.regions[region_name].provider
    latest = ctx.store.latest_forecast(zone, now, provider=provider)
    if latest is not None and latest.end is not None and latest.end > now:
        age_s = latest.age_s(now)
        if age_s <= ctx.config.forecast_max_age_s:
            note = None
            if age_s > ctx.config.forecast_max_age_s * NOTE_AGE_SHARE:
                note = (
                    f"planned on a {age_s / 3600:.1f} h old forecast from {latest.provider} "
                    f"issued {latest.issued_at.isoformat()}"
                )
            return Signal(series=latest, note=note, fallback="old-forecast" if note else None)
    profile = actuals_profile(ctx, zone, now, provider=provider)
    if profile is not None:
        return Signal(
            series=profile,
            fallback="actuals-profile",
            note=f"no fresh forecast for {zone}: planned on its actuals of the last 24 h "
            "repeated as a daily profile",
        )
    return None


def actuals_profile(
    ctx: ServiceContext, zone: str, now: datetime, *, provider: str | None = None
) -> Forecast | None:
    """Last 24 h of actuals (``provider``'s when given) shifted forward by whole days to cover
    the next 48 h."""
    recent = ctx.store.actuals(zone, now - PROFILE_LOOKBACK, now, provider=provider)
    if recent is None or len(recent.points) < 2:
        return None
    points: list[IntensityPoint] = []
    for days in (1, 2):
        shift = timedelta(days=days)
        points.extend(
            IntensityPoint(valid_at=p.valid_at + shift, g_per_kwh=p.g_per_kwh)
            for p in recent.points
        )
    return Forecast(
        zone=zone,
        provider=f"{recent.provider}:actuals-profile",
        kind=SeriesKind.FORECAST,
        issued_at=now,
        resolution_s=recent.resolution_s,
        points=tuple(points),
        signal=recent.signal,
    )


def planning_job(ctx: ServiceContext, job: Job, now: datetime) -> PlanningJob:
    spec = job.spec
    if spec.kind is JobKind.DEPLOYMENT:
        duration_s = ctx.config.deployment_horizon_s
    else:
        duration_s = max((spec.expected_duration_s or 0.0) - ran_s(ctx, job), ctx.config.step_s)
    return as_planning_job(job, duration_s=duration_s, current_plan=job.plan)


def as_planning_job(job: Job, *, duration_s: float, current_plan: Plan | None) -> PlanningJob:
    """The planner's view of ``job`` for a run of ``duration_s`` still to place (pure)."""
    spec = job.spec
    return PlanningJob(
        id=job.id,
        kind=spec.kind,
        gpus=0 if is_share(spec.resources.gpus) else math.ceil(spec.resources.gpus),
        gpu_share=spec.resources.gpus if is_share(spec.resources.gpus) else 0.0,
        power_w=spec.expected_power_w or 0.0,
        duration_s=duration_s,
        submitted_at=job.created_at,
        # The core starts no job before ``now`` (it takes the later of the two), so the
        # conversion does not depend on the cycle's time and is kept while the job is unchanged.
        earliest_start=job.created_at,
        deadline=effective_deadline(spec, job.created_at),
        home_region=spec.home_region,
        allowed_regions=spec.allowed_regions,
        policy=spec.policy,
        interruptible=spec.interruptible,
        priority=spec.priority,
        current_plan=current_plan,
    )


def ran_s(ctx: ServiceContext, job: Job) -> float:
    """Seconds an interruptible job ran in its earlier, finished windows (0 for others); the
    attempt running now, if any, is not counted."""
    if not job.spec.interruptible or job.attempt == 0:
        return 0.0
    total = 0.0
    started: datetime | None = None
    for event in ctx.store.events(job.id):
        if event.to_state is JobState.RUNNING:
            started = event.at
        elif event.from_state is JobState.RUNNING and started is not None:
            total += (event.at - started).total_seconds()
            started = None
    return total


def occupancy(ctx: ServiceContext, now: datetime) -> tuple[Occupancy, ...]:
    """GPUs held by started jobs until their expected end (at least one more slot if overdue);
    started deployments holding shares of a GPU as one packed pool per region."""
    held = []
    shares: dict[str, list[float]] = {}
    for job in ctx.store.holdings(STARTED_STATES):
        if not job.region or job.gpus == 0:
            continue
        start = job.started_at or now
        if job.kind is JobKind.DEPLOYMENT or job.expected_duration_s is None:
            end = now + timedelta(seconds=ctx.config.deployment_horizon_s)
        else:
            end = start + timedelta(seconds=job.expected_duration_s)
        end = max(end, now + timedelta(seconds=ctx.config.step_s))
        if is_share(job.gpus):
            shares.setdefault(job.region, []).append(job.gpus)
            continue
        held.append(
            Occupancy(region=job.region, gpus=math.ceil(job.gpus), start=min(start, now), end=end)
        )
    pool_end = now + timedelta(seconds=ctx.config.deployment_horizon_s)
    held += [
        Occupancy(region=r, gpus=gpus_needed(s), start=now, end=pool_end, gpu_shares=tuple(s))
        for r, s in sorted(shares.items())
    ]
    return tuple(held)


def build_snapshot(
    ctx: ServiceContext,
    now: datetime,
    jobs: list[Job] | None = None,
    planning: list[PlanningJob] | None = None,
) -> tuple[Snapshot, dict[str, Signal]]:
    """The snapshot for one cycle and the signal chosen per region (for notes and events).

    ``planning`` (jobs already converted) wins over ``jobs``; with neither, every plannable job
    is read. A region whose Ray is down gets no signal: no job is placed there meanwhile.
    """
    if planning is None:
        if jobs is None:
            jobs = all_jobs(ctx, tuple(PLANNABLE_STATES))
        planning = [planning_job(ctx, j, now) for j in jobs]
    signals = {
        name: s
        for name in ctx.regions
        if name not in ctx.regions_down and (s := region_signal(ctx, name, now)) is not None
    }
    snapshot = Snapshot(
        now=now,
        jobs=tuple(planning),
        regions=tuple(
            RegionState(name=r.name, gpus=r.gpus, pue=r.pue) for r in ctx.regions.values()
        ),
        forecasts={name: s.series for name, s in signals.items()},
        occupancy=occupancy(ctx, now),
        forecast_error=dict(ctx.forecast_error),
        step_s=ctx.config.step_s,
        budget_s=ctx.config.planning_budget_s,
    )
    return snapshot, signals
