"""The scheduler's cycles: plan, dispatch due jobs, reconcile with the cluster.

Each cycle reads the store, makes one decision with the pure planning core, and writes the
outcome back with conditional updates, so a crash at any point loses and duplicates nothing.
"""

from __future__ import annotations

import dataclasses
import logging
import shlex
from datetime import datetime, timedelta

from scheduler.domain import (
    PLANNABLE_STATES,
    DispatchError,
    InvalidTransition,
    Job,
    JobEvent,
    JobState,
    Plan,
)
from scheduler.domain.runs import RunInfo, RunStatus
from scheduler.planning.cycle import plan_cycle as decide
from scheduler.planning.feasibility import check_submit
from scheduler.planning.snapshot import Decision
from scheduler.service.context import ServiceContext
from scheduler.service.snapshots import (
    STARTED_STATES,
    Signal,
    all_jobs,
    build_snapshot,
    ran_s,
)
from scheduler.service.tokens import issue_bootstrap

log = logging.getLogger(__name__)
ACTOR = "scheduler"


def refusal_reason(ctx: ServiceContext, job: Job, now: datetime) -> str | None:
    """Why ``job`` cannot meet its deadline given current capacity and plans, or None."""
    queued = [j for j in all_jobs(ctx, tuple(PLANNABLE_STATES)) if j.id != job.id]
    snapshot, _ = build_snapshot(ctx, now, jobs=[*queued, job])
    return check_submit(snapshot, snapshot.jobs[-1])


def plan_cycle(ctx: ServiceContext) -> Decision:
    """Re-plan every job that has not started and store the plans that changed."""
    with ctx.lock:
        now = ctx.clock.now()
        snapshot, signals = build_snapshot(ctx, now)
        decision = decide(snapshot)
        current = {j.id: j.current_plan for j in snapshot.jobs}
        for job_id, plan in decision.plans.items():
            plan = _with_signal_note(plan, signals.get(plan.region))
            if _same_plan(current.get(job_id), plan, ctx.config.step_s):
                continue
            event = JobEvent(job_id=job_id, at=now, kind="plan", actor=ACTOR,
                             reason=_plan_reason(plan), to_state=JobState.PLANNED,
                             expected_emissions_g=plan.forecast_emissions_g)
            if ctx.store.save_plan(job_id, plan, event):
                ctx.counters["plans_changed_total"] += 1
                if plan.note:
                    ctx.counters["plans_on_fallback_total"] += 1
                    ctx.store.add_event(JobEvent(job_id=job_id, at=now, kind="fallback",
                                                 actor=ACTOR, reason=plan.note))
        for job_id, reason in decision.late.items():
            ctx.counters["jobs_late_total"] += 1
            ctx.store.add_event(JobEvent(job_id=job_id, at=now, kind="warning", actor=ACTOR,
                                         reason=reason))
        ctx.counters["plan_cycles_total"] += 1
        return decision


def _with_signal_note(plan: Plan, signal: Signal | None) -> Plan:
    if signal is None or signal.note is None or plan.note:
        return plan
    return dataclasses.replace(plan, note=signal.note,
                               forecast_issued_at=signal.series.issued_at)


def _same_plan(old: Plan | None, new: Plan, step_s: float) -> bool:
    """Plans that differ by less than a slot are the same plan: a run-now start moves with the
    clock each cycle, and rewriting it would only add noise to the job's history."""
    if old is None or old.region != new.region or len(old.windows) != len(new.windows):
        return False
    if old.note != new.note:
        return False
    return all(abs((a.start - b.start).total_seconds()) < step_s
               and abs((a.end - b.end).total_seconds()) < step_s
               for a, b in zip(old.windows, new.windows, strict=True))


def _plan_reason(plan: Plan) -> str:
    saving_g = plan.baseline_emissions_g - plan.forecast_emissions_g
    text = (f"planned in {plan.region} at {plan.start.isoformat()} by {plan.policy.value}: "
            f"forecast {plan.forecast_emissions_g:.1f} g vs {plan.baseline_emissions_g:.1f} g "
            f"run-now ({saving_g:+.1f} g saved)")
    return f"{text}; {plan.note}" if plan.note else text


def dispatch_due(ctx: ServiceContext) -> list[str]:
    """Claim planned jobs whose window has come and submit them; returns the submitted ids."""
    with ctx.dispatch_lock:
        now = ctx.clock.now()
        submitted = []
        for job in ctx.store.claim_due(now, ctx.config.dispatch_batch):
            if _submit(ctx, job, now):
                submitted.append(job.id)
        return submitted


def _submit(ctx: ServiceContext, job: Job, now: datetime) -> bool:
    if job.region is None or job.submission_id is None:
        raise DispatchError(f"job {job.id} was claimed without a region or submission id")
    region = ctx.region(job.region)
    # A one-time bootstrap credential, not the attempt's token: Ray records what it is given.
    secret = issue_bootstrap(ctx, job)
    res = job.spec.resources
    working_dir = job.spec.runtime_env.get("working_dir")
    entrypoint = f"{ctx.config.worker_command} -- {shlex.quote(job.spec.entrypoint)}"
    try:
        ctx.dispatcher.submit(
            region, job.submission_id, entrypoint, env=_worker_env(ctx, job, secret),
            gpus=res.gpus, cpus=res.cpus, memory_mb=res.memory_mb,
            working_dir=str(working_dir) if working_dir else None)
    except DispatchError as e:
        ctx.counters["dispatch_errors_total"] += 1
        _retry_or_fail(ctx, job, now, f"dispatch to {region.name} failed: {e}")
        return False
    ctx.store.add_event(JobEvent(
        job_id=job.id, at=now, kind="dispatch", actor=ACTOR,
        reason=f"submitted to Ray in {region.name} as {job.submission_id}"))
    ctx.counters["jobs_dispatched_total"] += 1
    return True


def _worker_env(ctx: ServiceContext, job: Job, secret: str) -> dict[str, str]:
    """What the worker runner needs: who it is, where to report, and the power model for
    estimates where no meter exists; then the job's own env vars."""
    cfg = ctx.config
    res = job.spec.resources
    env = {
        "GREENLIGHT_JOB_ID": job.id, "GREENLIGHT_ATTEMPT": str(job.attempt),
        "GREENLIGHT_API_URL": cfg.api_url, "GREENLIGHT_TOKEN": secret,
        "GREENLIGHT_GPUS": str(res.gpus), "GREENLIGHT_CPUS": str(res.cpus),
        "GREENLIGHT_GPU_POWER_W": str(cfg.gpu_w),
        "GREENLIGHT_CPU_CORE_POWER_W": str(cfg.cpu_core_w),
        "GREENLIGHT_BASE_POWER_W": str(cfg.base_w),
        # The same path on every attempt: an interruptible job resumes where it stopped.
        "GREENLIGHT_CHECKPOINT": f"{cfg.checkpoint_dir.rstrip('/')}/{job.id}.pt",
    }
    user_env = dict(job.spec.runtime_env.get("env_vars", {}))
    env.update({str(k): str(v) for k, v in user_env.items()})
    return env


def _retry_or_fail(ctx: ServiceContext, job: Job, now: datetime, reason: str) -> None:
    retries_used = job.attempt - 1
    target = JobState.RETRYING if retries_used < job.spec.max_retries else JobState.FAILED
    try:
        ctx.store.transition(job.id, target, JobEvent(
            job_id=job.id, at=now, kind="state", actor=ACTOR, reason=reason,
            from_state=job.state, to_state=target), expected_from=[job.state],
            finished_at=now if target is JobState.FAILED else None, message=reason)
    except InvalidTransition:
        log.info("job %s changed state concurrently; leaving it", job.id)


def reconcile(ctx: ServiceContext) -> None:
    """Ask the cluster about every started job and move the store to match.

    Serialised with dispatch in this process, so a job being submitted right now is not taken
    for one lost between claim and submit; across replicas the resubmit is idempotent anyway.
    """
    with ctx.dispatch_lock:
        _reconcile(ctx)


def _reconcile(ctx: ServiceContext) -> None:
    now = ctx.clock.now()
    for job in all_jobs(ctx, STARTED_STATES):
        if not job.region or not job.submission_id:
            continue
        region = ctx.region(job.region)
        try:
            info = ctx.dispatcher.status(region, job.submission_id)
        except DispatchError as e:
            ctx.last_errors[f"ray:{region.name}"] = str(e)
            continue
        try:
            _apply_status(ctx, job, info, now)
        except InvalidTransition:
            log.info("job %s changed state concurrently during reconcile", job.id)


def _apply_status(ctx: ServiceContext, job: Job, info: RunInfo, now: datetime) -> None:
    started = ctx.clock.from_wall(info.started_at) if info.started_at else now
    finished = ctx.clock.from_wall(info.finished_at) if info.finished_at else now
    if info.status is RunStatus.UNKNOWN:
        # Claimed but never submitted (crash in between): the same submission id is safe to
        # send again, the cluster runs it at most once.
        _submit(ctx, job, now)
        return
    if info.status is RunStatus.PENDING:
        waited_s = (now - (job.updated_at or now)).total_seconds()
        if waited_s > ctx.config.pending_timeout_s:
            ctx.dispatcher.stop(ctx.region(job.region or ""), job.submission_id or "")
            _retry_or_fail(ctx, job, now, f"pending on the cluster for {waited_s:.0f} s")
        return
    if job.state is JobState.DISPATCHED and info.status in (
            RunStatus.RUNNING, RunStatus.SUCCEEDED, RunStatus.FAILED):
        job = _move(ctx, job, JobState.RUNNING, now, "running on the cluster", started_at=started)
    if info.status is RunStatus.RUNNING:
        _maybe_suspend(ctx, job, now)
    elif info.status is RunStatus.SUCCEEDED:
        _move(ctx, job, JobState.SUCCEEDED, now, "finished", finished_at=finished, exit_code=0)
    elif info.status is RunStatus.FAILED:
        _retry_or_fail(ctx, job, now, f"run failed: {info.message or 'no message'}"[:500])
    elif info.status is RunStatus.STOPPED:
        target = JobState.SUSPENDED if _window_over(job, now) else JobState.FAILED
        _move(ctx, job, target, now, "stopped on the cluster", finished_at=finished)


def _move(ctx: ServiceContext, job: Job, target: JobState, now: datetime, reason: str, *,
          started_at: datetime | None = None, finished_at: datetime | None = None,
          exit_code: int | None = None) -> Job:
    return ctx.store.transition(job.id, target, JobEvent(
        job_id=job.id, at=now, kind="state", actor="ray", reason=reason, from_state=job.state,
        to_state=target), expected_from=[job.state], started_at=started_at,
        finished_at=finished_at, exit_code=exit_code)


def _window_over(job: Job, now: datetime) -> bool:
    return (job.spec.interruptible and job.plan is not None and len(job.plan.windows) > 1
            and now >= job.plan.windows[0].end)


def _maybe_suspend(ctx: ServiceContext, job: Job, now: datetime) -> None:
    """An interruptible job leaves the cluster at the end of its window (SIGTERM, checkpoint)."""
    if not _window_over(job, now) or job.plan is None:
        return
    # This attempt ran from its window's start at the earliest (dispatch waits for it).
    began = max(job.started_at or now, job.plan.windows[0].start)
    ran = (now - began).total_seconds() + ran_s(ctx, job)
    if ran + ctx.config.step_s >= (job.spec.expected_duration_s or 0.0):
        return  # nearly done: finishing now beats a stop/resume round trip
    ctx.dispatcher.stop(ctx.region(job.region or ""), job.submission_id or "")
    _move(ctx, job, JobState.SUSPENDED, now,
          f"window ended at {job.plan.windows[0].end.isoformat()}: suspended until the next one")


def prune(ctx: ServiceContext) -> int:
    now = ctx.clock.now()
    return ctx.store.prune_forecasts(now - timedelta(seconds=ctx.config.forecast_retention_s))
