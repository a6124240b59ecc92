"""The scheduler's cycles: plan, dispatch due jobs, reconcile with the cluster.

Each cycle reads the store, makes one decision with the pure planning core, and writes the
outcome back with conditional updates, so a crash at any point loses and duplicates nothing.
Each job is handled on its own (``scheduler.service.isolation``): one that cannot be planned,
dispatched or reconciled is quarantined with an event, and the cycle goes on with the rest.

The plan cycle keeps its job table between cycles (``JobTable``: only changed rows are read)
and writes every changed plan in one bulk transaction (``PlanStore.save_plans``). It runs in
the periodic thread with the store's own pooled connections; the API never takes ``ctx.lock``.
Dispatch is in ``scheduler.service.dispatching``, reconcile in ``...reconciling``.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

from scheduler.collector import collector_paused
from scheduler.domain import (
    Job,
    JobEvent,
    JobState,
    Plan,
)
from scheduler.domain.errors import UnplannableJob
from scheduler.planning.cycle import plan_cycle as decide
from scheduler.planning.finite import job_problem, plan_problem
from scheduler.planning.precedence import plan_in_levels
from scheduler.planning.snapshot import Decision, Occupancy, PlanningJob, Snapshot
from scheduler.service import admission, dependencies
from scheduler.service.context import ServiceContext
from scheduler.service.dispatching import dispatch_due
from scheduler.service.isolation import isolated, quarantine
from scheduler.service.reconciling import reconcile
from scheduler.service.relocating import relocation_cycle
from scheduler.service.snapshots import (
    Signal,
    build_snapshot,
    planning_job,
)

__all__ = ["dispatch_due", "plan_cycle", "prune", "reconcile"]

log = logging.getLogger(__name__)
ACTOR = "scheduler"


def plan_cycle(ctx: ServiceContext) -> Decision:
    """Re-plan every job that has not started and store the plans that changed, in bulk.

    A job the core cannot plan (non-finite numbers, an error its data triggers) is quarantined
    and the others are planned. Wakes the dispatcher when a plan makes a job due.
    """
    with ctx.lock, collector_paused():
        now = ctx.clock.now()
        jobs = ctx.job_table.refresh(ctx.store, now)
        resolved = dependencies.resolve(ctx, jobs, now)  # --after: who waits, who follows whom
        jobs = resolved.jobs
        planning = _planning_jobs(ctx, jobs, now)
        snapshot, signals = build_snapshot(ctx, now, planning=planning)
        decision = plan_in_levels(snapshot, resolved.parents, lambda s: _decide(ctx, s))
        admission.rebuild(ctx, snapshot, decision)  # submits check against what this leaves
        _save(ctx, {j.id: j for j in jobs}, decision, signals, now)
        for job_id, reason in ctx.job_table.late_changes(decision.late).items():
            ctx.counters["jobs_late_total"] += 1  # once per job and reason, not per cycle
            with isolated(ctx, job_id, "plan"):
                ctx.store.add_event(
                    JobEvent(job_id=job_id, at=now, kind="warning", actor=ACTOR, reason=reason)
                )
        relocation_cycle(ctx)  # running deployments: stay, or start a move
        ctx.counters["plan_cycles_total"] += 1
        return decision


def _planning_jobs(ctx: ServiceContext, jobs: Sequence[Job], now: datetime) -> list[PlanningJob]:
    """The jobs as the core sees them, less those whose numbers it cannot plan (quarantined)
    and those whose every region is down (they wait, as they are, for one to come back)."""
    if ctx.regions_down:
        jobs = [j for j in jobs if not _all_regions_down(ctx, j)]
    try:  # the common case, without a guard per job (100,000 of them)
        fast = ctx.job_table.converted(jobs, lambda job: planning_job(ctx, job, now))
    except Exception:  # some job breaks the conversion: find it below, one job at a time
        pass
    else:
        if not any(job_problem(j) for j in fast):
            return fast
    out: list[PlanningJob] = []
    bad: set[str] = set()
    for job in jobs:
        with isolated(ctx, job.id, "plan"):
            candidate = planning_job(ctx, job, now)
            reason = job_problem(candidate)
            if reason is None:
                out.append(candidate)
                continue
            quarantine(ctx, job.id, "plan", reason)
        bad.add(job.id)
    ctx.job_table.forget(bad)
    return out


def _all_regions_down(ctx: ServiceContext, job: Job) -> bool:
    regions = job.spec.allowed_regions or tuple(ctx.regions)
    return all(name in ctx.regions_down for name in regions)


def _decide(ctx: ServiceContext, snapshot: Snapshot) -> Decision:
    """The core's decision for ``snapshot``; a job it names as unplannable is quarantined and
    the rest decided again. Should the core fail without naming a job, the jobs are decided in
    halves (the second half seeing the first's plans as occupied capacity) down to the one job
    that fails, which is quarantined."""
    jobs = list(snapshot.jobs)
    while jobs:
        try:
            return decide(dataclasses.replace(snapshot, jobs=tuple(jobs)))
        except UnplannableJob as e:
            quarantine(ctx, e.job_id, "plan", e.reason)
            ctx.job_table.forget({e.job_id})
            jobs = [j for j in jobs if j.id != e.job_id]
        except Exception as e:  # the core failed on data it did not name: find the job
            ctx.store.ping()  # an outage is not a job's fault: let it end the cycle
            if len(jobs) == 1:
                quarantine(ctx, jobs[0].id, "plan", f"{type(e).__name__}: {e}")
                ctx.job_table.forget({jobs[0].id})
                return Decision(plans={})
            log.warning(
                "planning %d jobs failed (%s: %s); planning them in halves",
                len(jobs),
                type(e).__name__,
                e,
            )
            half = len(jobs) // 2
            first = _decide(ctx, dataclasses.replace(snapshot, jobs=tuple(jobs[:half])))
            held = tuple(
                Occupancy(region=w.region, gpus=j.gpus, start=w.start, end=w.end)
                for j in jobs[:half]
                if (p := first.plans.get(j.id))
                for w in p.windows
            )
            second = _decide(
                ctx,
                dataclasses.replace(
                    snapshot, jobs=tuple(jobs[half:]), occupancy=(*snapshot.occupancy, *held)
                ),
            )
            return Decision(
                plans={**first.plans, **second.plans},
                late={**first.late, **second.late},
                notes={**first.notes, **second.notes},
            )
    return Decision(plans={})


def _save(
    ctx: ServiceContext,
    jobs: dict[str, Job],
    decision: Decision,
    signals: dict[str, Signal],
    now: datetime,
) -> None:
    """Write the plans that changed in one bulk transaction; per job should the bulk fail."""
    changes: list[tuple[str, Plan, Sequence[JobEvent]]] = []
    for job_id, decided in decision.plans.items():
        job = jobs.get(job_id)
        signal = signals.get(decided.region)
        if (
            job is not None
            and decided is job.plan  # kept by the core as it is: nothing to write
            and job.state is JobState.PLANNED
            and (decided.note or signal is None or signal.note is None)
        ):
            continue
        plan = _with_signal_note(decided, signal)
        if (
            job is not None
            and job.state is JobState.PLANNED
            and _same_plan(job.plan, plan, ctx.config.step_s)
        ):
            continue
        reason = plan_problem(plan)
        if reason is not None:
            quarantine(ctx, job_id, "plan", reason)
            continue
        events: list[JobEvent] = [
            JobEvent(
                job_id=job_id,
                at=now,
                kind="plan",
                actor=ACTOR,
                reason=_plan_reason(plan),
                to_state=JobState.PLANNED,
                expected_emissions_g=plan.forecast_emissions_g,
            )
        ]
        if plan.note:
            events.append(
                JobEvent(job_id=job_id, at=now, kind="fallback", actor=ACTOR, reason=plan.note)
            )
        changes.append((job_id, plan, events))
    try:
        saved = ctx.store.save_plans(changes)
    except Exception:  # one row the database refuses must not lose every other plan
        ctx.store.ping()
        log.exception("bulk write of %d plans failed; writing them one by one", len(changes))
        saved = set()
        for change in changes:
            with isolated(ctx, change[0], "plan"):
                saved |= ctx.store.save_plans([change])
    plans = {job_id: plan for job_id, plan, _ in changes if job_id in saved}
    ctx.job_table.update(
        [
            dataclasses.replace(
                jobs[i], plan=p, state=JobState.PLANNED, updated_at=now
            )  # as save_plans stamped it
            for i, p in plans.items()
            if i in jobs
        ]
    )
    ctx.counters["plans_changed_total"] += len(plans)
    ctx.counters["plans_on_fallback_total"] += sum(1 for p in plans.values() if p.note)
    if any(p.start <= now for p in plans.values()):
        ctx.wake_dispatcher.set()


def _with_signal_note(plan: Plan, signal: Signal | None) -> Plan:
    if signal is None or signal.note is None or plan.note:
        return plan
    return dataclasses.replace(plan, note=signal.note, forecast_issued_at=signal.series.issued_at)


def _same_plan(old: Plan | None, new: Plan, step_s: float) -> bool:
    """Plans that differ by less than a slot are the same plan: a run-now start moves with the
    clock each cycle, and rewriting it would only add noise to the job's history. Only for a
    job already planned: a retrying or suspended job must be saved to become planned at all."""
    if old is None or old.region != new.region or len(old.windows) != len(new.windows):
        return False
    if old.note != new.note:
        return False
    if old.windows == new.windows:  # the usual case: the planner kept it
        return True
    return all(
        abs((a.start - b.start).total_seconds()) < step_s
        and abs((a.end - b.end).total_seconds()) < step_s
        for a, b in zip(old.windows, new.windows, strict=True)
    )


def _plan_reason(plan: Plan) -> str:
    saving_g = plan.baseline_emissions_g - plan.forecast_emissions_g
    text = (
        f"planned in {plan.region} at {plan.start.isoformat()} by {plan.policy.value}: "
        f"forecast {plan.forecast_emissions_g:.1f} g vs {plan.baseline_emissions_g:.1f} g "
        f"run-now ({saving_g:+.1f} g saved)"
    )
    return f"{text}; {plan.note}" if plan.note else text


def prune(ctx: ServiceContext) -> int:
    now = ctx.clock.now()
    ctx.counters["events_pruned_total"] += ctx.store.prune_events(
        now - timedelta(seconds=ctx.config.event_retention_s)
    )
    return ctx.store.prune_forecasts(now - timedelta(seconds=ctx.config.forecast_retention_s))
