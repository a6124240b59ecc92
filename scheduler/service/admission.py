"""Submit-time admission against the capacity ledger: a cost that does not grow with the queue.

The plan cycle leaves its decision in an :class:`~scheduler.planning.ledger.AdmissionLedger`
(``rebuild``, called from ``plan_cycle``); a submit asks it whether the job can meet its
deadline and reserves the job's window (``admit``), so the next submit sees the capacity it
took. The cycle then re-plans everything from the store and rebuilds the ledger, keeping the
reservations of jobs admitted after its snapshot was read (reconciling).

**Before the first cycle** after a start the ledger is empty. Submits are then admitted on the
pure per-job checks alone (``validate_spec``: regions, GPUs per region, deadline vs duration)
and the cycle, which runs at start-up and on every arrival, decides; a job it cannot place in
time gets a ``warning`` event. Building the ledger from the store on the first request instead
would make that request cost O(queue), the very thing this module removes; a few seconds of
optimism after a restart is the cheaper trade.

With the cycles in this process the ledger is rebuilt here by each plan cycle. With the
cycles in a scheduler process of their own, that process stores each ledger
(``ctx.publish_ledger``) and every API process follows the store (``remote_cycles``) and
``adopt`` s each new one, keeping the reservations it made since the cycle's snapshot was read:
several API processes then check against one ledger, each adding its own arrivals until the
next cycle counts them all.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

from scheduler.domain import Job, JobKind
from scheduler.planning.consolidation import consolidate
from scheduler.planning.ledger import AdmissionLedger, Reservation, Verdict
from scheduler.planning.snapshot import Decision, PlanningJob, Snapshot
from scheduler.service.context import ServiceContext
from scheduler.service.snapshots import as_planning_job

log = logging.getLogger(__name__)

ADMIT_ALL = Verdict(reason=None)
# A job admitted this long before a cycle's snapshot time was in that snapshot: its insert
# committed (milliseconds after its admission) before the cycle read the queue.
SEEN_MARGIN = timedelta(seconds=1)


def planning_job(ctx: ServiceContext, job: Job) -> PlanningJob:
    """A just-submitted job as the ledger sees it (nothing ran yet, no I/O)."""
    spec = job.spec
    duration_s = (
        ctx.config.deployment_horizon_s
        if spec.kind is JobKind.DEPLOYMENT
        else spec.expected_duration_s or float(ctx.config.step_s)
    )
    return as_planning_job(job, duration_s=duration_s, current_plan=None)


def admit(ctx: ServiceContext, jobs: Sequence[Job], now: datetime) -> list[Verdict]:
    """One verdict per job, in order. All or none: when any job is refused, nothing stays
    reserved (a batch is atomic); otherwise every job's window is reserved. Cost: O(jobs x
    regions x horizon slots), independent of the queue."""
    return admit_planning(ctx, [planning_job(ctx, job) for job in jobs], now)


def admit_planning(
    ctx: ServiceContext, jobs: Sequence[PlanningJob], now: datetime
) -> list[Verdict]:
    """``admit`` for jobs already in the planner's view (a batch builds them without ``Job``s)."""
    with ctx.admission_lock:
        ledger = ctx.admission
        if ledger is None:
            return [ADMIT_ALL] * len(jobs)
        verdicts = ledger.admit_many(jobs, now)
        if any(not v.admitted for v in verdicts):
            for job in jobs:
                ledger.release(job.id)
        else:
            for job in jobs:
                ctx.admission_times[job.id] = now
        overbooked = sum(v.overbooked for v in verdicts)
    if overbooked:
        ctx.counters["admissions_overbooked_total"] += overbooked
    return verdicts


def release(ctx: ServiceContext, job_ids: Sequence[str]) -> None:
    """Return what cancelled jobs reserved since the last cycle."""
    with ctx.admission_lock:
        for job_id in job_ids:
            ctx.admission_times.pop(job_id, None)
            if ctx.admission is not None:
                ctx.admission.release(job_id)


def rebuild(ctx: ServiceContext, snapshot: Snapshot, decision: Decision) -> None:
    """Replace the ledger with the capacity ``decision`` leaves: ``snapshot``'s running jobs
    (hard) and the plans (soft), priced on its forecasts. Jobs admitted after the snapshot was
    read keep their reservations."""
    seen = {j.id for j in snapshot.jobs}
    snapshot, _ = consolidate(snapshot)  # as the cycle did: shares of a GPU held as packed pools
    gpus = {j.id: j.gpus for j in snapshot.jobs}
    planned = [
        Reservation(
            job_id=job_id, region=w.region, gpus=gpus.get(job_id, 0), start=w.start, end=w.end
        )
        for job_id, plan in decision.plans.items()
        for w in plan.windows
    ]
    fresh = AdmissionLedger.build(
        now=snapshot.now,
        step_s=snapshot.step_s,
        regions=snapshot.regions,
        occupancy=snapshot.occupancy,
        planned=planned,
        forecasts=snapshot.forecasts,
    )
    with ctx.admission_lock:
        if ctx.admission is not None:
            fresh.carry_over(ctx.admission, seen)
        ctx.admission = fresh
        for job_id in seen & ctx.admission_times.keys():
            del ctx.admission_times[job_id]
    if ctx.publish_ledger is not None:
        ctx.publish_ledger(fresh, snapshot.now)


def adopt(ctx: ServiceContext, fresh: AdmissionLedger, snapshot_at: datetime) -> None:
    """Check submits against ``fresh``, a ledger another process's plan cycle built from a
    snapshot read at ``snapshot_at``; what this process admitted since then stays reserved."""
    cutoff = snapshot_at - SEEN_MARGIN
    with ctx.admission_lock:
        seen = {job_id for job_id, at in ctx.admission_times.items() if at < cutoff}
        if ctx.admission is not None:
            fresh.carry_over(ctx.admission, seen)
        ctx.admission = fresh
        for job_id in seen:
            del ctx.admission_times[job_id]
