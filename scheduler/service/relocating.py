"""Relocation of running deployments, each plan cycle: decide, then start the blue/green move.

For every running deployment with a recorded endpoint whose region is up, the pure core
(``scheduler.planning.relocation``) prices staying against every other allowed region that is
up, from the latest usable forecast of each, the deployment's measured power (the mean of its
serving copy's energy reports over ``power_window_s``; else its expected power) and the PUEs.
Deployments holding GPUs go through ``plan_relocations`` (capacity: the region's GPUs less
those its other started jobs hold); CPU-only ones through ``decide``.

A move starts only when the old copy is RUNNING on its cluster right now (never for a copy the
reconciler may be about to call lost): the store records it first (``start_move``: relocating,
the next attempt, the move in flight, an event with the expected saving), then the new copy is
submitted under that attempt's submission id with its own one-time credential. A crash between
the two is safe: ``scheduler.service.moving`` submits a copy not marked submitted again, and
the cluster runs one submission id once. A Ray Serve application's new copy is a second
application (named and routed by its submission id) whose route becomes the move's next
endpoint as soon as it is deployed: it has no runner to report one.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from scheduler.domain import DispatchError, EnergyReport, Job, JobEvent, Region
from scheduler.domain.deployments import Move, MovePhase, serving_attempt
from scheduler.domain.errors import ClusterUnreachable
from scheduler.domain.runs import RunStatus
from scheduler.planning.relocation import (
    RelocationDecision,
    RunningDeployment,
    decide,
    plan_relocations,
    region_outlooks,
)
from scheduler.service.context import ServiceContext
from scheduler.service.dispatching import _worker_env, worker_entrypoint
from scheduler.service.isolation import isolated, region_down, region_up
from scheduler.service.serve_endpoints import record_serve_endpoint
from scheduler.service.snapshots import STARTED_STATES, region_signal
from scheduler.service.tokens import issue_bootstrap

log = logging.getLogger(__name__)
ACTOR = "scheduler"


def relocation_cycle(ctx: ServiceContext) -> list[str]:
    """Decide for every running deployment and start the moves that pay; returns their ids."""
    cfg = ctx.config.relocation
    if not cfg.enabled:
        return []
    now = ctx.clock.now()
    # Within its minimum stay a deployment stays whatever the forecast: its power (a read of
    # its energy reports) is not worth fetching.
    stay = timedelta(seconds=cfg.policy.min_stay_s)
    deployments = [
        j
        for j in ctx.store.running_deployments()
        if j.endpoint
        and j.region in ctx.regions
        and j.region not in ctx.regions_down
        and now - (j.moved_at or j.started_at or j.created_at) >= stay
    ]
    if not deployments:
        return []
    up = {n: r for n, r in ctx.regions.items() if n not in ctx.regions_down}
    forecasts = {}
    for name in up:
        signal = region_signal(ctx, name, now)
        if signal is not None:
            forecasts[name] = signal.series
    outlooks = region_outlooks(forecasts, {n: r.pue for n, r in up.items()}, now, cfg.policy)
    # One read for every deployment's reports, not one per deployment.
    reports: dict[str, list[EnergyReport]] = {}
    for report in ctx.store.energy_reports([j.id for j in deployments]):
        reports.setdefault(report.job_id, []).append(report)
    running = {j.id: _as_running(ctx, j, now, reports.get(j.id, [])) for j in deployments}
    decisions = {
        j.id: decide(running[j.id], outlooks, now, cfg.policy)
        for j in deployments
        if j.spec.resources.gpus == 0
    }
    with_gpus = [running[j.id] for j in deployments if j.spec.resources.gpus > 0]
    if with_gpus:
        capacity = _free_gpus(ctx, up, {d.job_id for d in with_gpus})
        # Shares of a GPU share devices on Ray (packed); whole GPUs each take their own.
        packed = any(0 < d.gpu_share < 1 for d in with_gpus)
        decisions |= plan_relocations(with_gpus, outlooks, now, cfg.policy, capacity, packed=packed)
    moved = []
    for job in deployments:
        decision = decisions[job.id]
        if not decision.moves:
            continue
        with isolated(ctx, job.id, "relocate"):
            if start_move(ctx, job, decision, now):
                moved.append(job.id)
    if moved:
        ctx.wake_reconciler.set()  # the reconcile pass advances moves in flight
    return moved


def _as_running(
    ctx: ServiceContext, job: Job, now: datetime, reports: Sequence[EnergyReport]
) -> RunningDeployment:
    allowed = tuple(r for r in (job.spec.allowed_regions or tuple(ctx.regions)) if r in ctx.regions)
    return RunningDeployment(
        job_id=job.id,
        region=job.region or "",
        since=job.moved_at or job.started_at or job.created_at,
        power_w=measured_power_w(ctx, job, now, reports),
        allowed_regions=allowed,
        gpu_share=float(job.spec.resources.gpus),
    )


def measured_power_w(
    ctx: ServiceContext, job: Job, now: datetime, job_reports: Sequence[EnergyReport]
) -> float:
    """Mean power (W) of the serving copy over the last ``power_window_s``, from its energy
    reports (``job_reports``, the job's); the job's expected power when it has reported
    nothing in that window (or the configured power of what it holds, when it gave none)."""
    attempt = serving_attempt(job.submission_id, job.attempt)
    since = now - timedelta(seconds=ctx.config.relocation.power_window_s)
    reports = [r for r in job_reports if r.attempt == attempt and r.interval_end > since]
    if reports:
        span_s = (
            max(r.interval_end for r in reports) - min(r.interval_start for r in reports)
        ).total_seconds()
        if span_s > 0:
            return sum(r.energy_j for r in reports) / span_s
    if job.spec.expected_power_w is not None:
        return job.spec.expected_power_w
    res, cfg = job.spec.resources, ctx.config
    return res.gpus * cfg.gpu_w + res.cpus * cfg.cpu_core_w + cfg.base_w


def _free_gpus(ctx: ServiceContext, up: dict[str, Region], deployments: set[str]) -> dict[str, int]:
    """Each region's GPUs less those its started jobs hold, other than ``deployments`` (the
    core counts those itself)."""
    free = {name: region.gpus for name, region in up.items()}
    for run in ctx.store.started_runs(STARTED_STATES):  # short columns: no full rows
        if run.job_id not in deployments and run.region in free:
            free[run.region] -= math.ceil(run.gpus)
    return {name: max(0, gpus) for name, gpus in free.items()}


def start_move(ctx: ServiceContext, job: Job, decision: RelocationDecision, now: datetime) -> bool:
    """Record the move and submit the new copy; True when the move started. Nothing happens
    when the old copy is not RUNNING on its cluster, or the job changed meanwhile."""
    best = decision.best
    if decision.target_region is None or best is None or job.region is None:
        return False
    old_region = ctx.region(job.region)
    try:
        info = ctx.dispatcher.status(old_region, job.submission_id or "")
    except ClusterUnreachable as e:
        region_down(ctx, old_region, e)
        return False
    if info.status is not RunStatus.RUNNING:
        log.info("not moving %s: its copy reads %s on the cluster", job.id, info.status.value)
        return False
    cfg = ctx.config.relocation
    # After a rolled-back move the attempt count runs ahead of the serving copy's attempt.
    old_attempt = serving_attempt(job.submission_id, job.attempt)
    new_attempt = job.attempt + 1
    move = Move(
        phase=MovePhase.STARTING,
        from_region=job.region,
        to_region=decision.target_region,
        old_attempt=old_attempt,
        old_submission_id=job.submission_id or "",
        new_attempt=new_attempt,
        new_submission_id=f"{job.id}-{new_attempt}",
        started_at=now,
        health_deadline=now + timedelta(seconds=cfg.health_timeout_s),
        expected_saving_g=best.saving_g,
        expected_saving_pct=best.saving_pct,
        stay_g=best.stay_g,
        move_g=best.move_g,
        horizon_s=cfg.policy.horizon_s,
    )
    event = JobEvent(
        job_id=job.id,
        at=now,
        kind="state",
        actor=ACTOR,
        reason=f"relocating from {move.from_region} to {move.to_region} as "
        f"{move.new_submission_id}: {decision.message}",
        expected_emissions_g=best.move_g,
    )
    if not ctx.store.start_move(job.id, move, event):
        return False
    ctx.counters["relocations_started_total"] += 1
    submit_copy(ctx, job, move)
    return True


def submit_copy(ctx: ServiceContext, job: Job, move: Move) -> bool:
    """Submit the move's new copy (idempotent by its submission id) and mark it submitted;
    False when the target's cluster could not take it (the move rolls back on the next
    pass when it refused; an unreachable cluster is tried again until the health deadline)."""
    from scheduler.service.moving import roll_back

    region = ctx.region(move.to_region)
    copy = replace(job, attempt=move.new_attempt, submission_id=move.new_submission_id)
    secret = issue_bootstrap(ctx, copy)
    res = job.spec.resources
    working_dir = job.spec.runtime_env.get("working_dir")
    submit = ctx.dispatcher.submit
    if job.spec.serve is not None:  # a second Serve application, at its own route prefix
        submit = functools.partial(ctx.dispatcher.submit, serve=job.spec.serve)
    try:
        submit(
            region,
            move.new_submission_id,
            worker_entrypoint(ctx, job),
            env=_worker_env(ctx, copy, secret),
            gpus=res.gpus,
            cpus=res.cpus,
            memory_mb=res.memory_mb,
            working_dir=str(working_dir) if working_dir else None,
            runtime_env=job.spec.runtime_env,
        )
    except ClusterUnreachable as e:
        region_down(ctx, region, e)
        return False
    except DispatchError as e:
        region_up(ctx, region)
        roll_back(ctx, job.id, move, f"Ray in {region.name} refused the new copy: {e}")
        return False
    region_up(ctx, region)
    done = replace(move, submitted=True)
    saved = ctx.store.save_move(job.id, move, done, ())
    # A Serve copy has no runner to report where it answers: its route is known now, and
    # becomes the move's next endpoint (health-checked before the switch, like any copy's).
    record_serve_endpoint(ctx, copy, region, ctx.clock.now())
    return saved
