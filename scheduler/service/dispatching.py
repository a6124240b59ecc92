"""Dispatch: hand due jobs to their region's cluster, exactly once per attempt.

``claim_due`` makes a job dispatched at a new attempt (no job is claimed twice). Submitting
that attempt then goes through two compare-and-swaps in the store, so whatever several
replicas do, one attempt gets one credential, one submit and one ``dispatch`` event:

1. ``take_submit``: a lease on submitting the attempt; only its holder mints the worker's
   credential and calls the cluster. A holder that dies loses the lease after
   ``submit_lease_s`` and reconcile may take it over (the cluster's submission id keeps the
   run single even then).
2. ``record_dispatch``: sets ``dispatched_attempt`` and appends the ``dispatch`` event in one
   transaction, once.

A cluster that cannot be reached (``ClusterUnreachable``) decided nothing: the claim is undone
(``release_claim``: back to retrying with the attempt count restored, so no retry is used) and
the region is marked down; the planner places the job again on its next cycle. A cluster that
refuses the job counts against its retries.
"""

from __future__ import annotations

import functools
import logging
import shlex
from datetime import datetime

from scheduler.domain import DispatchError, InvalidTransition, Job, JobEvent, JobState
from scheduler.domain.errors import ClusterUnreachable
from scheduler.service.context import ServiceContext
from scheduler.service.isolation import isolated, region_down, region_up
from scheduler.service.serve_endpoints import record_serve_endpoint
from scheduler.service.tokens import issue_bootstrap

log = logging.getLogger(__name__)
ACTOR = "scheduler"
LOST_RUN_ALLOWANCE = 3


def dispatch_due(ctx: ServiceContext) -> list[str]:
    """Claim planned jobs whose window has come and submit them; returns the submitted ids."""
    with ctx.dispatch_lock:
        now = ctx.clock.now()
        submitted = []
        claimed = ctx.store.claim_due(now, ctx.config.dispatch_batch)
        for job in claimed:
            with isolated(ctx, job.id, "dispatch"):
                if submit_attempt(ctx, job, now):
                    submitted.append(job.id)
        if len(claimed) >= ctx.config.dispatch_batch:
            ctx.wake_dispatcher.set()  # more are due: go again at once
        if submitted:
            ctx.wake_reconciler.set()
        return submitted


def submit_attempt(ctx: ServiceContext, job: Job, now: datetime) -> bool:
    """Submit ``job``'s current attempt if this caller wins its lease; True when this call
    handed it to the cluster. Raises RegionNotFound for a region no longer configured."""
    if job.region is None or job.submission_id is None:
        raise DispatchError(f"job {job.id} was claimed without a region or submission id")
    region = ctx.region(job.region)
    if not ctx.store.take_submit(job.id, job.attempt, now, ctx.config.submit_lease_s):
        return False  # another replica (or an earlier pass) is submitting this attempt
    # A one-time bootstrap credential, not the attempt's token: Ray records what it is given.
    secret = issue_bootstrap(ctx, job)
    res = job.spec.resources
    working_dir = job.spec.runtime_env.get("working_dir")
    entrypoint = worker_entrypoint(ctx, job)
    submit = ctx.dispatcher.submit
    if job.spec.serve is not None:  # a Ray Serve application: deployed, not run as a command
        submit = functools.partial(ctx.dispatcher.submit, serve=job.spec.serve)
    try:
        submit(
            region,
            job.submission_id,
            entrypoint,
            env=_worker_env(ctx, job, secret),
            gpus=res.gpus,
            cpus=res.cpus,
            memory_mb=res.memory_mb,
            working_dir=str(working_dir) if working_dir else None,
            runtime_env=job.spec.runtime_env,
        )
    except ClusterUnreachable as e:
        ctx.counters["dispatch_unreachable_total"] += 1
        region_down(ctx, region, e)
        # Kind "release": the claim's dispatched event above it did not start an attempt.
        released = ctx.store.release_claim(
            job.id,
            job.attempt,
            JobEvent(
                job_id=job.id,
                at=now,
                kind="release",
                actor=ACTOR,
                reason=f"Ray in {region.name} unreachable ({e}); will dispatch again, "
                "not counted as a retry",
            ),
        )
        if released:
            ctx.wake_planner.set()
        return False
    except DispatchError as e:
        ctx.counters["dispatch_errors_total"] += 1
        region_up(ctx, region)  # it answered
        retry_or_fail(ctx, job, now, f"dispatch to {region.name} failed: {e}")
        return False
    region_up(ctx, region)
    if ctx.store.record_dispatch(job.id, job.attempt, dispatch_event(job, region.name, now)):
        ctx.counters["jobs_dispatched_total"] += 1
    record_serve_endpoint(ctx, job, region, now)  # no-op unless a Ray Serve application
    return True


def worker_entrypoint(ctx: ServiceContext, job: Job) -> str:
    """The shell line Ray runs: the worker runner around the job's own command. Not ``exec``'d:
    Ray's shell stays its parent, which is what lets a run outlive a killed head
    (``tests/integration/test_ray_head_restart.py``); Ray's stop signals every process of the
    run and waits for all of them."""
    return f"{ctx.config.worker_command} -- {shlex.quote(job.spec.entrypoint)}"


def dispatch_event(job: Job, region: str, now: datetime) -> JobEvent:
    return JobEvent(
        job_id=job.id,
        at=now,
        kind="dispatch",
        actor=ACTOR,
        reason=f"submitted to Ray in {region} as {job.submission_id}",
    )


def _worker_env(ctx: ServiceContext, job: Job, secret: str) -> dict[str, str]:
    """What the worker runner needs: who it is, where to report, and the power model for
    estimates where no meter exists; then the job's own env vars."""
    cfg = ctx.config
    res = job.spec.resources
    env = {
        "GREENLIGHT_JOB_ID": job.id,
        "GREENLIGHT_ATTEMPT": str(job.attempt),
        "GREENLIGHT_API_URL": cfg.api_url,
        "GREENLIGHT_TOKEN": secret,
        "GREENLIGHT_GPUS": str(res.gpus),
        "GREENLIGHT_CPUS": str(res.cpus),
        "GREENLIGHT_GPU_POWER_W": str(cfg.gpu_w),
        "GREENLIGHT_CPU_CORE_POWER_W": str(cfg.cpu_core_w),
        "GREENLIGHT_BASE_POWER_W": str(cfg.base_w),
        # The same path on every attempt: an interruptible job resumes where it stopped.
        "GREENLIGHT_CHECKPOINT": f"{cfg.checkpoint_dir.rstrip('/')}/{job.id}.pt",
    }
    user_env = dict(job.spec.runtime_env.get("env_vars", {}))
    env.update({str(k): str(v) for k, v in user_env.items()})
    return env


def retry_or_fail(
    ctx: ServiceContext,
    job: Job,
    now: datetime,
    reason: str,
    *,
    lost: bool = False,
    exit_code: int | None = None,
) -> None:
    """Retrying while the job has retries left, else failed; a lost race is only logged.

    A run the cluster lost (``lost``: not the job's fault) retries even without retries left,
    up to LOST_RUN_ALLOWANCE more attempts, so a cluster restart does not fail a job. A failed
    job keeps the run's ``exit_code`` (``greenlight submit --wait`` exits with it)."""
    retries_used = job.attempt - 1 - job.move_attempts  # a move's new copy is no retry
    allowed = job.spec.max_retries + (LOST_RUN_ALLOWANCE if lost else 0)
    target = JobState.RETRYING if retries_used < allowed else JobState.FAILED
    try:
        ctx.store.transition(
            job.id,
            target,
            JobEvent(
                job_id=job.id,
                at=now,
                kind="state",
                actor=ACTOR,
                reason=reason,
                from_state=job.state,
                to_state=target,
            ),
            expected_from=[job.state],
            finished_at=now if target is JobState.FAILED else None,
            message=reason,
            exit_code=exit_code if target is JobState.FAILED else None,
        )
    except InvalidTransition:
        log.info("job %s changed state concurrently; leaving it", job.id)
        return
    if target is JobState.RETRYING:
        ctx.wake_planner.set()  # a retry is planned (and, if due, dispatched) at once
