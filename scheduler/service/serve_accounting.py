"""Accounting for deployments run as Ray Serve applications: requests served and energy.

A plain deployment runs under ``workers.runner``, which meters the node and posts energy and
the requests its server counted. A Serve application has no runner beside it, so reconcile
does both from the scheduler's side, for each running Serve application, at most every
``POLL_S`` (wall seconds) per application:

* **Requests**: ``GET <endpoint>/-/units`` (the dispatcher's ``serve_units``), the application's
  total over every replica (``workers.examples.serve_app``), stored as the attempt's progress
  exactly as ``POST /v1/jobs/{id}/progress`` would store it: a total only grows, a repeat
  changes nothing. An application that keeps no count (404) has none; a lower total (its
  counter restarted) is left out. Requests answered after the last poll before a stop are not
  counted (at most ``POLL_S`` plus the app's own push delay).
* **Energy**: nothing measures the replicas, so the scheduler writes a flagged **estimate**
  (method ``estimate``): the power the runner's own estimate model gives for the job's
  resources (``workers.energy.estimate.EstimateMeter``, the configured ``gpu_w``,
  ``cpu_core_w``, ``base_w``) x time, over consecutive intervals of ``ESTIMATE_INTERVAL_S``
  from the attempt's dispatch (``scheduler.planning.estimate_intervals``: no gap, no overlap,
  idempotent per interval), and a final interval up to the run's end once it stopped (for
  ``ATTEMPT_GRACE_S`` after, however it stopped: a cancel through the API too). Each copy is
  its own attempt, priced in the region it ran in: while a move is in flight both copies are
  estimated, and after it the old one up to its stop, not beyond.

Why not a real meter: measuring would need a reporter inside each replica holding a credential
to post to the API, and Serve shows every application's config (its env vars included) to
anyone who can read the dashboard, so Greenlight withholds the runner's credential there
(``scheduler.dispatch.ray_serve.WITHHELD_ENV``). An estimate the scheduler writes itself needs
no credential on the cluster.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from scheduler.domain import DispatchError, Job, JobState, MeterMethod, Region
from scheduler.domain.deployments import serving_attempt
from scheduler.domain.energy import ATTEMPT_GRACE_S, EnergyConflict
from scheduler.domain.progress import UNIT_BY_KIND, JobProgress, ProgressConflict
from scheduler.planning.estimate_intervals import estimate_reports, next_estimate_step
from scheduler.service.context import ServiceContext
from scheduler.service.energy import attempt_run, wall_duration
from scheduler.service.isolation import isolated
from workers.energy.estimate import EstimateMeter

log = logging.getLogger(__name__)

# Each application is polled (and its estimate brought up to date) at most this often, in wall
# seconds: reconcile runs every half second while jobs run.
POLL_S = 5.0
# One estimate interval, in wall seconds (the runner's default report interval).
ESTIMATE_INTERVAL_S = 30.0
# Intervals written per job per pass when catching up after an outage.
MAX_STEPS_PER_PASS = 48
UNIT = UNIT_BY_KIND["deployment"]

# When this process last accounted each job (monotonic seconds), which ended jobs have their
# final interval, and each running copy's (run start, covered until) by (job id, attempt) as
# last read or written, so a pass with no interval due reads nothing. Only a throttle: the
# store stays the truth (a restarted process accounts each job at once and finds what is
# already written; an interval another replica wrote meanwhile is the same interval, on the
# same grid, stored once).
_polled_s: dict[str, float] = {}
_finished: set[str] = set()
_covered: dict[tuple[str, int], tuple[datetime, datetime | None]] = {}
# Copies of running jobs (job id, attempt) whose run ended and is covered to its end: the old
# copy of a completed move is estimated until then, and not read again after.
_copies_done: set[tuple[str, int]] = set()
_LIVE = frozenset({JobState.RUNNING, JobState.RELOCATING})
_guard = threading.Lock()


class ServeUnits(Protocol):
    """The dispatcher's ``serve_units`` (``RayJobsDispatcher``): an application's request
    total, None when it keeps none. Raises DispatchError."""

    def __call__(self, region: Region, submission_id: str) -> float | None: ...


def account_serve_apps(ctx: ServiceContext, jobs: Sequence[Job], now: datetime) -> None:
    """Poll the request counts of the running Serve applications among ``jobs`` and bring
    their energy estimates up to date; write the final estimate of those that ended lately.
    Each job on its own (``isolated``)."""
    running = {
        j.id: j
        for j in jobs
        if j.spec.serve is not None
        and j.state in (JobState.RUNNING, JobState.RELOCATING)
        and j.region
        and j.submission_id
    }
    for job in running.values():
        if _due(job.id):
            with isolated(ctx, job.id, "serve accounting"):
                _count_requests(ctx, job)
                for attempt, region in _copies(job):
                    _estimate(ctx, job, now, attempt, region)
    since = now - wall_duration(ctx.clock, ATTEMPT_GRACE_S)
    ended = ctx.store.ended_serve_jobs(since)
    with _guard:  # forget jobs past their grace, so neither grows with the service's age
        keep = running.keys() | {j.id for j in ended}
        _finished.intersection_update(keep)
        for job_id in _polled_s.keys() - keep:
            del _polled_s[job_id]
        for key in [k for k in _covered if k[0] not in running]:
            del _covered[key]
        _copies_done.difference_update([k for k in _copies_done if k[0] not in running])
    for job in ended:
        if job.id in running or job.id in _finished or not _due(job.id):
            continue
        with isolated(ctx, job.id, "serve accounting"):
            if _estimate(ctx, job, now):
                with _guard:
                    _finished.add(job.id)
                    _polled_s.pop(job.id, None)


def estimate_power_w(ctx: ServiceContext, job: Job) -> dict[str, float]:
    """The power (watts per ``estimate:*`` device) assumed for ``job``: the runner's estimate
    model over the job's resources and the configured figures."""
    res, cfg = job.spec.resources, ctx.config
    return EstimateMeter(res.gpus, res.cpus, cfg.gpu_w, cfg.cpu_core_w, cfg.base_w).power_w


def node_of(job: Job, region: str | None = None) -> str:
    """The ``node`` of the scheduler's estimates for ``job``'s copy in ``region`` (default: the
    job's region); no node of the cluster."""
    return f"ray-serve:{region or job.region}"


def _copies(job: Job) -> list[tuple[int, str]]:
    """The (attempt, region) of each copy of ``job`` whose estimate may be due: the serving
    one; while a move is in flight, the other; after a move, the old one until its last
    interval (up to its stop) is written. Each is priced where it ran (``attempt_region``)."""
    serving = serving_attempt(job.submission_id, job.attempt)
    copies = {serving: job.region or ""}
    move = job.move
    if move is not None:
        copies.setdefault(move.old_attempt, move.from_region)
        if move.submitted:
            copies.setdefault(move.new_attempt, move.to_region)
    elif job.relocations:
        last = job.relocations[-1]
        with _guard:
            done = (job.id, last.old_attempt) in _copies_done
            # Its coverage was cached while it ran: read again, its stop is now known.
            _covered.pop((job.id, last.old_attempt), None)
        if not done:
            copies.setdefault(last.old_attempt, last.from_region)
    return sorted(copies.items())


def _due(job_id: str) -> bool:
    now_s = time.monotonic()
    with _guard:
        if now_s - _polled_s.get(job_id, -POLL_S) < POLL_S:
            return False
        _polled_s[job_id] = now_s
        return True


def _count_requests(ctx: ServiceContext, job: Job) -> None:
    units_of: ServeUnits | None = getattr(ctx.dispatcher, "serve_units", None)
    if units_of is None:
        return
    attempt = serving_attempt(job.submission_id, job.attempt)
    try:
        units = units_of(ctx.region(job.region or ""), job.submission_id or "")
    except DispatchError as e:
        ctx.counters["serve_units_errors_total"] += 1
        log.info("request count of %s not read: %s", job.submission_id, e)
        return
    if units is None:
        return
    try:
        progress = JobProgress(job_id=job.id, attempt=attempt, units=units, unit=UNIT)
        if ctx.store.record_progress(progress):
            ctx.counters["progress_reports_total"] += 1
    except (ValueError, ProgressConflict) as e:  # an impossible count, or a counter restarted
        log.info("request count %s of %s left out: %s", units, job.submission_id, e)


def _estimate(
    ctx: ServiceContext,
    job: Job,
    now: datetime,
    attempt: int | None = None,
    region: str | None = None,
) -> bool:
    """Write the estimate intervals due for ``job``'s copy ``attempt`` (default: the serving
    one) in ``region`` (default: the job's); True once its run has ended and is covered to its
    end."""
    if attempt is None:
        attempt = serving_attempt(job.submission_id, job.attempt)
    interval_s = wall_duration(ctx.clock, ESTIMATE_INTERVAL_S).total_seconds()
    if job.state in _LIVE and _nothing_due(job.id, attempt, now, interval_s):
        return False
    run = attempt_run(job, ctx.store.events(job.id), attempt)
    if run is None:
        return False
    node = node_of(job, region)
    covered = [
        r.interval_end
        for r in ctx.store.energy_reports([job.id])
        if r.attempt == attempt and r.node == node and r.method is MeterMethod.ESTIMATE
    ]
    covered_until = max(covered, default=None)
    power_w = estimate_power_w(ctx, job)
    if not power_w:
        return True  # no power assumed: nothing to write
    for _ in range(MAX_STEPS_PER_PASS):
        step = next_estimate_step(
            run_start=run.started_at,
            covered_until=covered_until,
            now=now,
            ended_at=run.ended_at,
            interval_s=interval_s,
        )
        if step is None:
            break
        reports = estimate_reports(step, job_id=job.id, attempt=attempt, node=node, power_w=power_w)
        try:
            ctx.counters["serve_estimates_total"] += ctx.store.add_energy_reports(reports)
        except EnergyConflict as e:  # another replica wrote this interval another way
            log.info("estimate of %s not stored: %s", job.submission_id, e)
            return False
        covered_until = step.end
    if run.ended_at is None:
        with _guard:
            _covered[(job.id, attempt)] = (run.started_at, covered_until)
        return False
    done = covered_until is not None and covered_until >= run.ended_at
    if done:
        with _guard:
            _covered.pop((job.id, attempt), None)
            _copies_done.add((job.id, attempt))
    return done


def _nothing_due(job_id: str, attempt: int, now: datetime, interval_s: float) -> bool:
    """Whether the coverage this process last saw for a running copy leaves nothing due now."""
    known = _covered.get((job_id, attempt))
    if known is None:
        return False
    step = next_estimate_step(
        run_start=known[0], covered_until=known[1], now=now, ended_at=None, interval_s=interval_s
    )
    return step is None
