"""Reconcile: ask each region's cluster about every started job and move the store to match.

Each job is handled on its own (``isolated``): a job whose region was removed from the
configuration, or whose data breaks a step, is quarantined and the others go on; a cluster
error for one job (``stop`` refused) is logged and retried next pass. A region whose Ray
cannot be reached is marked down after one failed call (its other jobs are skipped this pass,
so an outage costs one timeout, not one per job), and regions nothing asked lately are probed,
so an outage is noticed within ``region_probe_s`` plus one pass.

When the cluster does not know a submitted attempt (a restarted head forgets its jobs), the
attempt is not submitted again while its runner still reports energy (or was dispatched less
than ``heartbeat_s`` ago): the old run may still be going. Only once it is silent for that
long does the job retry, as a new attempt with its own submission id and energy.

When an attempt ends, the energy lines its runner wrote into the job's log
(``GREENLIGHT_ENERGY {...}``) are read back and stored: reports the API never received (an
outage) are recovered, and those it did are duplicates the store ignores.

Ray Serve applications have no runner to report: each pass also polls their request totals and
writes their flagged energy estimates (``scheduler.service.serve_accounting``).

The periodic loop passes a :class:`~scheduler.service.poll_pacing.PollPacer`: a pass then asks
only about the runs due (young runs every half second, long-running ones less often); a call
without one (a test, a one-off pass) asks about every run.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from datetime import datetime

from scheduler.domain import DispatchError, Job, JobEvent, JobState, Region
from scheduler.domain.deployments import serving_attempt
from scheduler.domain.errors import ClusterUnreachable
from scheduler.domain.runs import DispatchMark, RunInfo, RunStatus, StartedRun
from scheduler.service.context import ServiceContext
from scheduler.service.dispatching import dispatch_event, retry_or_fail, submit_attempt
from scheduler.service.energy_log import parse_energy_lines
from scheduler.service.isolation import isolated, region_down, region_up
from scheduler.service.moving import advance_moves
from scheduler.service.poll_pacing import QUEUED_FLOOR_S, PollPacer
from scheduler.service.serve_accounting import account_serve_apps
from scheduler.service.snapshots import STARTED_STATES, ran_s
from scheduler.service.units_log import recover_units

log = logging.getLogger(__name__)
ACTOR = "scheduler"
_PROBE_ID = "greenlight-probe"


def reconcile(ctx: ServiceContext, pacer: PollPacer | None = None) -> int:
    """One pass over every started job not in quarantine (with ``pacer``: those it says are
    due), then probe quiet regions. Returns how many started jobs there were (the periodic
    loop polls faster while there are some).

    Every started job is read as a few short columns (``StartedRun``), which is all the
    pacing needs; only the runs asked about this pass, and the Serve applications, are read in
    full. With 1,000 long runs a pass asks about a few dozen: reading and converting the other
    rows every half second was most of the pass."""
    now = ctx.clock.now()
    now_s = time.monotonic() if pacer is not None else 0.0
    runs = ctx.store.started_runs(STARTED_STATES)
    started = _runners_started(ctx, runs) if pacer is not None else set()
    due: list[tuple[StartedRun, PollPacer | None]] = []
    for run in runs:
        if run.mark.quarantine is not None or not run.region or not run.submission_id:
            continue
        if run.state is JobState.RELOCATING:
            continue  # both copies belong to the move (scheduler.service.moving) until it ends
        # A dispatched run whose runner has started (or that has no runner: a Serve app) is
        # asked about every pass until seen running: a short one may end at any moment. One
        # still queued in the cluster is asked about slowly (poll_pacing: its runner's start
        # wakes this loop).
        pace, floor_s = pacer, None
        if run.state is JobState.DISPATCHED:
            queued = not run.serve and run.job_id not in started
            pace, floor_s = (pacer, QUEUED_FLOOR_S) if queued else (None, None)
        if pace is None or pace.due(_run_key(run), now_s, floor_s):
            due.append((run, pace))
    serve = [r.job_id for r in runs if r.serve and r.mark.quarantine is None]
    full = ctx.store.get_jobs([r.job_id for r, _ in due] + serve)
    down_now: set[str] = set()
    for run, pace in due:
        job = full.get(run.job_id)
        if job is None or job.state not in STARTED_STATES or job.region in down_now:
            continue  # gone or moved on since the first read: the next pass sees it as it is
        with isolated(ctx, job.id, "reconcile"):
            if not _reconcile_job(ctx, job, run.mark, now):
                down_now.add(job.region or "")
        if pace is not None and job.region not in down_now:
            pace.asked(_run_key(run), now_s)
    if pacer is not None:
        pacer.keep_only([_run_key(r) for r in runs])
    _probe_quiet_regions(ctx, down_now)
    advance_moves(ctx)
    # Serve applications have no runner to report requests and energy: see the module.
    account_serve_apps(
        ctx, [j for i in serve if (j := full.get(i)) is not None and j.region not in down_now], now
    )
    return len(runs)


def _runners_started(ctx: ServiceContext, runs: list[StartedRun]) -> set[str]:
    """Dispatched jobs whose runner has exchanged its attempt's credential (it has started)."""
    dispatched = {r.job_id: r.mark.attempt for r in runs if r.state is JobState.DISPATCHED}
    return ctx.store.runners_started(dispatched) if dispatched else set()


def _run_key(run: StartedRun) -> str:
    # A run is young again in each state it is seen in: a run that waited in Ray's queue and
    # now runs is asked about at once, not at the pace its wait had backed off to.
    return f"{run.submission_id}/{run.state.value}"


def _reconcile_job(ctx: ServiceContext, job: Job, mark: DispatchMark | None, now: datetime) -> bool:
    """One job's pass; False when its region's cluster could not be reached."""
    region = ctx.region(job.region or "")
    try:
        info = ctx.dispatcher.status(region, job.submission_id or "")
    except ClusterUnreachable as e:
        region_down(ctx, region, e)
        return False
    except DispatchError as e:
        ctx.last_errors[f"ray:{region.name}"] = str(e)
        log.warning("status of %s on %s failed: %s", job.submission_id, region.name, e)
        return True
    region_up(ctx, region)
    if info.status is RunStatus.UNKNOWN:
        _unknown(ctx, job, mark, region, now)
        return True
    # The cluster has it, yet no dispatch is recorded and nobody is submitting: the submitter
    # died between its submit and its record. Record it (once) now.
    if (
        job.state is JobState.DISPATCHED
        and mark is not None
        and not mark.recorded
        and not _lease_held(ctx, mark, now)
        and ctx.store.record_dispatch(job.id, job.attempt, dispatch_event(job, region.name, now))
    ):
        ctx.counters["jobs_dispatched_total"] += 1
    try:
        _apply_status(ctx, job, info, region, now)
    except ClusterUnreachable as e:
        region_down(ctx, region, e)
        return False
    except DispatchError as e:  # a stop the cluster refused: try again next pass
        ctx.counters["reconcile_dispatch_errors_total"] += 1
        log.warning("reconciling %s: %s", job.id, e)
    return True


def _lease_held(ctx: ServiceContext, mark: DispatchMark, now: datetime) -> bool:
    return (
        mark.submit_attempt is not None
        and mark.submit_attempt >= mark.attempt
        and mark.submit_taken_at is not None
        and (now - mark.submit_taken_at).total_seconds() < ctx.config.submit_lease_s
    )


def _unknown(
    ctx: ServiceContext, job: Job, mark: DispatchMark | None, region: Region, now: datetime
) -> None:
    """The cluster does not know the attempt: never submitted, or lost with the cluster."""
    if mark is None or not mark.recorded:
        # Claimed but not (known to be) submitted: submit it, unless a live replica is doing
        # so right now (its lease); the submission id keeps the run single in any case.
        if job.state is JobState.DISPATCHED:
            submit_attempt(ctx, job, now)
        return
    last = _last_sign_of_life(ctx, job, mark)
    silent_s = (now - last).total_seconds()
    if silent_s < ctx.config.heartbeat_s:
        ctx.counters["attempts_unknown_alive_total"] += 1
        log.info(
            "Ray in %s does not know %s, but it reported %.0f s ago: waiting",
            region.name,
            job.submission_id,
            silent_s,
        )
        return
    ctx.counters["attempts_lost_total"] += 1
    retry_or_fail(
        ctx,
        job,
        now,
        f"attempt {job.attempt} lost by Ray in {region.name}: "
        f"unknown to the cluster and silent for {silent_s:.0f} s",
        lost=True,
    )


def _last_sign_of_life(ctx: ServiceContext, job: Job, mark: DispatchMark) -> datetime:
    """The latest of the attempt's dispatch and the end of its latest energy report."""
    times = [t for t in (mark.dispatched_at, job.started_at, job.updated_at) if t is not None]
    times += [
        r.interval_end
        for r in ctx.store.energy_reports([job.id])
        if r.attempt == serving_attempt(job.submission_id, job.attempt)
    ]
    return max(times)


def _apply_status(
    ctx: ServiceContext, job: Job, info: RunInfo, region: Region, now: datetime
) -> None:
    started = ctx.clock.from_wall(info.started_at) if info.started_at else now
    finished = ctx.clock.from_wall(info.finished_at) if info.finished_at else now
    if info.status is RunStatus.PENDING:
        waited_s = (now - (job.updated_at or now)).total_seconds()
        if waited_s > ctx.config.pending_timeout_s:
            ctx.dispatcher.stop(region, job.submission_id or "")
            retry_or_fail(ctx, job, now, f"pending on the cluster for {waited_s:.0f} s")
        return
    if info.status in (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.STOPPED):
        recover_energy(ctx, job, region)
    if job.state is JobState.DISPATCHED and info.status in (
        RunStatus.RUNNING,
        RunStatus.SUCCEEDED,
        RunStatus.FAILED,
    ):
        job = _move(ctx, job, JobState.RUNNING, now, "running on the cluster", started_at=started)
    if info.status is RunStatus.RUNNING:
        _maybe_suspend(ctx, job, region, now)
    elif info.status is RunStatus.SUCCEEDED:
        _move(ctx, job, JobState.SUCCEEDED, now, "finished", finished_at=finished, exit_code=0)
        ctx.wake_planner.set()  # capacity freed
    elif info.status is RunStatus.FAILED:
        retry_or_fail(
            ctx,
            job,
            now,
            f"run failed: {info.message or 'no message'}"[:500],
            exit_code=info.exit_code,
        )
    elif info.status is RunStatus.STOPPED:
        target = JobState.SUSPENDED if _window_over(job, now) else JobState.FAILED
        _move(ctx, job, target, now, "stopped on the cluster", finished_at=finished)


def recover_energy(ctx: ServiceContext, job: Job, region: Region) -> None:
    """Store the energy lines and the unit count of the finished attempt's log (duplicates
    are ignored; a count only grows)."""
    try:
        text = ctx.dispatcher.logs(region, job.submission_id or "")
    except DispatchError as e:
        log.warning("cannot read the log of %s for energy: %s", job.submission_id, e)
        return
    # The log is the submission's: after a rolled-back move its attempt trails the count.
    attempt = serving_attempt(job.submission_id, job.attempt)
    recover_units(ctx, job, attempt, text)
    reports, refused = parse_energy_lines(text, job.id, attempt)
    if refused:
        ctx.counters["energy_log_lines_refused_total"] += refused
    if not reports:
        return
    reports = [
        dataclasses.replace(
            r,
            interval_start=ctx.clock.from_wall(r.interval_start),
            interval_end=ctx.clock.from_wall(r.interval_end),
        )
        for r in reports
    ]
    try:
        added = ctx.store.add_energy_reports(reports)
    except Exception as e:  # a conflicting line (EnergyConflict) must not block the job's end
        ctx.store.ping()
        log.warning("energy lines of %s not stored: %s", job.submission_id, e)
        return
    if added:
        ctx.counters["energy_reports_from_logs_total"] += added
        log.info("recovered %d energy reports of %s from its log", added, job.submission_id)


def _move(
    ctx: ServiceContext,
    job: Job,
    target: JobState,
    now: datetime,
    reason: str,
    *,
    started_at: datetime | None = None,
    finished_at: datetime | None = None,
    exit_code: int | None = None,
) -> Job:
    return ctx.store.transition(
        job.id,
        target,
        JobEvent(
            job_id=job.id,
            at=now,
            kind="state",
            actor="ray",
            reason=reason,
            from_state=job.state,
            to_state=target,
        ),
        expected_from=[job.state],
        started_at=started_at,
        finished_at=finished_at,
        exit_code=exit_code,
    )


def _window_over(job: Job, now: datetime) -> bool:
    return (
        job.spec.interruptible
        and job.plan is not None
        and len(job.plan.windows) > 1
        and now >= job.plan.windows[0].end
    )


def _maybe_suspend(ctx: ServiceContext, job: Job, region: Region, now: datetime) -> None:
    """An interruptible job leaves the cluster at the end of its window (SIGTERM, checkpoint)."""
    if not _window_over(job, now) or job.plan is None:
        return
    # This attempt ran from its window's start at the earliest (dispatch waits for it).
    began = max(job.started_at or now, job.plan.windows[0].start)
    ran = (now - began).total_seconds() + ran_s(ctx, job)
    if ran + ctx.config.step_s >= (job.spec.expected_duration_s or 0.0):
        return  # nearly done: finishing now beats a stop/resume round trip
    ctx.dispatcher.stop(region, job.submission_id or "")
    _move(
        ctx,
        job,
        JobState.SUSPENDED,
        now,
        f"window ended at {job.plan.windows[0].end.isoformat()}: suspended until the next one",
    )


def _probe_quiet_regions(ctx: ServiceContext, skip: set[str]) -> None:
    """Ask each region's cluster nothing asked for ``region_probe_s`` (and each one down) for
    a submission that does not exist: an answer means it is up."""
    now_s = time.monotonic()
    for region in ctx.regions.values():
        if region.name in skip:
            continue
        quiet = now_s - ctx.region_seen_ok.get(region.name, 0.0) > ctx.config.region_probe_s
        if not quiet and region.name not in ctx.regions_down:
            continue
        try:
            ctx.dispatcher.status(region, _PROBE_ID)
        except ClusterUnreachable as e:
            region_down(ctx, region, e)
        except DispatchError:
            continue  # it answered, or it is not configured for Ray: not an outage
        else:
            region_up(ctx, region)
