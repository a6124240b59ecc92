"""Moves in flight, advanced each reconcile pass from what the store holds (so a service
restarted mid-move carries on where the last one stopped).

``starting``: the new copy is submitted (again, under the same submission id, if a crash came
first); once it has reported its endpoint and ``GET <endpoint><health_path>`` answers 200, the
job switches to it (endpoint, region, submission id) and the move turns ``draining``. A new
copy that ends, or is not healthy by the move's health deadline, is stopped and the move rolled
back: the old copy never stopped serving. ``draining``: once ``drain_until`` passes, the old
copy is stopped and the move completes (history, ``relocated`` event, running again).

A job that left ``relocating`` meanwhile (cancelled, failed) has the copy that does not serve
it stopped and its move cleared.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime, timedelta

import requests

from scheduler.domain import DispatchError, Job, JobEvent, JobState
from scheduler.domain.deployments import (
    COPY_STOPPED,
    Move,
    MovePhase,
    completed,
    copy_stopped_reason,
)
from scheduler.domain.errors import ClusterUnreachable
from scheduler.domain.runs import RunStatus
from scheduler.service.context import ServiceContext
from scheduler.service.isolation import isolated, region_down, region_up

log = logging.getLogger(__name__)
ACTOR = "scheduler"
_ENDED = frozenset({RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.STOPPED, RunStatus.UNKNOWN})


def advance_moves(ctx: ServiceContext) -> int:
    """One step of every move in flight; returns how many there were."""
    from scheduler.service.relocating import submit_copy

    now = ctx.clock.now()
    # A job cancelled mid-move is found by its finish (an index) for a day; one pass suffices.
    moving = ctx.store.moving_jobs(now - timedelta(days=1))
    for job, next_endpoint in moving:
        move = job.move
        if move is None:
            continue
        with isolated(ctx, job.id, "relocate"):
            if job.state is not JobState.RELOCATING:
                _abandon(ctx, job, move, now)
            elif move.phase is MovePhase.DRAINING:
                _drain(ctx, job, move, now)
            elif not move.submitted:
                if now > move.health_deadline:
                    roll_back(ctx, job.id, move, "the new copy could not be submitted in time")
                else:
                    submit_copy(ctx, job, move)
            else:
                _start(ctx, job, move, next_endpoint, now)
    return len(moving)


def _start(
    ctx: ServiceContext, job: Job, move: Move, next_endpoint: str | None, now: datetime
) -> None:
    region = ctx.region(move.to_region)
    try:
        info = ctx.dispatcher.status(region, move.new_submission_id)
    except ClusterUnreachable as e:
        region_down(ctx, region, e)
        if now > move.health_deadline:
            roll_back(ctx, job.id, move, f"Ray in {region.name} unreachable: {e}")
        return
    region_up(ctx, region)
    if info.status in _ENDED:
        roll_back(
            ctx,
            job.id,
            move,
            f"the new copy {move.new_submission_id} {info.status.value}: {info.message}"[:500],
        )
        return
    if next_endpoint and healthy(ctx, next_endpoint):
        cfg = ctx.config.relocation
        after = replace(
            move,
            phase=MovePhase.DRAINING,
            switched_at=now,
            drain_until=now + timedelta(seconds=cfg.drain_s),
        )
        event = JobEvent(
            job_id=job.id,
            at=now,
            kind="switch",
            actor=ACTOR,
            reason=f"{move.new_submission_id} healthy at {next_endpoint}: serving from "
            f"{move.to_region}; {move.old_submission_id} drains for {cfg.drain_s:g} s",
        )
        if ctx.store.save_move(job.id, move, after, [event]):
            ctx.counters["relocations_switched_total"] += 1
        return
    if now > move.health_deadline:
        roll_back(
            ctx,
            job.id,
            move,
            f"the new copy was not healthy within {ctx.config.relocation.health_timeout_s:g} s "
            f"(endpoint {next_endpoint or 'never reported'})",
        )


def healthy(ctx: ServiceContext, endpoint: str) -> bool:
    """Whether ``GET <endpoint><health_path>`` answers 200 within the timeout."""
    cfg = ctx.config.relocation
    timeout_s = cfg.health_check_timeout_s
    try:
        response = requests.get(f"{endpoint}{cfg.health_path}", timeout=(timeout_s, timeout_s))
    except requests.RequestException as e:
        log.info("health check of %s failed: %s", endpoint, type(e).__name__)
        return False
    return response.status_code == 200


def _drain(ctx: ServiceContext, job: Job, move: Move, now: datetime) -> None:
    if move.drain_until is not None and now < move.drain_until:
        return
    if not _stop(ctx, move.from_region, move.old_submission_id):
        return  # its cluster did not answer: try again next pass
    relocation = completed(move, now)
    events = [
        _stopped(job.id, now, move.old_attempt, f"{move.old_submission_id} drained and stopped"),
        JobEvent(
            job_id=job.id,
            at=now,
            kind="relocated",
            actor=ACTOR,
            reason=f"relocated from {move.from_region} to {move.to_region}: expected to save "
            f"{move.expected_saving_g:.1f} g ({move.expected_saving_pct:.1f} %) over "
            f"{move.horizon_s / 3600:g} h",
            expected_emissions_g=move.move_g,
        ),
    ]
    if ctx.store.end_move(job.id, move, events, now=now, relocation=relocation):
        ctx.counters["relocations_total"] += 1
        log.info("%s relocated from %s to %s", job.id, move.from_region, move.to_region)


def roll_back(ctx: ServiceContext, job_id: str, move: Move, why: str) -> None:
    """Stop the new copy (if it was submitted) and end the move; the old copy serves on."""
    now = ctx.clock.now()
    if move.submitted:
        _stop(ctx, move.to_region, move.new_submission_id)
    events = [
        _stopped(job_id, now, move.new_attempt, why),
        JobEvent(
            job_id=job_id,
            at=now,
            kind="relocation-failed",
            actor=ACTOR,
            reason=f"move to {move.to_region} rolled back, staying in {move.from_region}: {why}",
        ),
    ]
    if ctx.store.end_move(job_id, move, events, now=now, relocation=None):
        ctx.counters["relocations_rolled_back_total"] += 1
        log.warning("move of %s to %s rolled back: %s", job_id, move.to_region, why)


def _abandon(ctx: ServiceContext, job: Job, move: Move, now: datetime) -> None:
    """The job left relocating (cancelled, failed): stop the copy that is not the job's."""
    switched = move.phase is MovePhase.DRAINING
    region, sid, attempt = (
        (move.from_region, move.old_submission_id, move.old_attempt)
        if switched
        else (move.to_region, move.new_submission_id, move.new_attempt)
    )
    if (switched or move.submitted) and not _stop(ctx, region, sid):
        return
    events = [_stopped(job.id, now, attempt, f"the job is {job.state.value}")]
    ctx.store.end_move(job.id, move, events, now=now, relocation=None)


def _stop(ctx: ServiceContext, region_name: str, submission_id: str) -> bool:
    """Ask a copy to stop; False only when its cluster could not be asked."""
    region = ctx.region(region_name)
    try:
        ctx.dispatcher.stop(region, submission_id)
    except ClusterUnreachable as e:
        region_down(ctx, region, e)
        return False
    except DispatchError as e:
        log.warning("stopping %s on %s failed: %s", submission_id, region_name, e)
        return False
    return True


def _stopped(job_id: str, at: datetime, attempt: int, why: str) -> JobEvent:
    return JobEvent(
        job_id=job_id,
        at=at,
        kind=COPY_STOPPED,
        actor=ACTOR,
        reason=copy_stopped_reason(attempt, why)[:1000],
    )
