"""Energy reports from workers: who may report, and which reports are plausible.

A report is accepted only from the job's own attempt token (or an admin), for an attempt that
was dispatched, with an interval inside that attempt's run (RUN_TOLERANCE_S of clock skew
allowed), at most ATTEMPT_GRACE_S after the attempt ended, without overlapping another interval
of the same device, and with no more energy than MAX_DEVICE_POWER_W over its interval. The
attempt's run is read from the job's state events: it starts when the attempt is dispatched and
ends at the first transition out of dispatched/running/relocating after that.

The grace and the tolerance are wall-clock durations (a runner's flush, clock skew): under
the demo's scaled clock they are scaled into scheduler time like the reports' timestamps.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from scheduler.domain import (
    EnergyReport,
    Forbidden,
    InvalidJobSpec,
    Job,
    JobEvent,
    JobState,
    Principal,
    Role,
)
from scheduler.domain.deployments import serving_attempt, stopped_attempt
from scheduler.domain.energy import (
    ATTEMPT_GRACE_S,
    RUN_TOLERANCE_S,
    EnergyConflict,
    report_problem,
)
from scheduler.ports import Clock
from scheduler.service.context import ServiceContext

_RUN_STATES = frozenset({JobState.DISPATCHED, JobState.RUNNING, JobState.RELOCATING})


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class AttemptRun:
    """When one attempt was on the cluster: ``ended_at`` is None while it still is."""

    started_at: datetime
    ended_at: datetime | None


def attempt_run(job: Job, events: Sequence[JobEvent], attempt: int) -> AttemptRun | None:
    """The run of ``job``'s ``attempt`` from its state events, or None if it never was
    dispatched. The n-th transition to dispatched starts attempt n."""
    if attempt < 1 or attempt > job.attempt:
        return None
    started_at: datetime | None = None
    seen = 0
    for event in events:
        if event.kind == "release":  # the claim before it never reached the cluster
            seen, started_at = max(seen - 1, 0), None  # (service.dispatching)
            continue
        if started_at is not None and stopped_attempt(event.kind, event.reason) == attempt:
            return AttemptRun(started_at=started_at, ended_at=event.at)  # one copy of a move
        if event.kind != "state" or event.to_state is None:
            continue
        if started_at is None:
            # A move's new copy is the next attempt (scheduler.domain.deployments).
            if event.to_state in (JobState.DISPATCHED, JobState.RELOCATING):
                seen += 1
                if seen == attempt:
                    started_at = event.at
        elif event.to_state not in _RUN_STATES:
            return AttemptRun(started_at=started_at, ended_at=event.at)
    if started_at is None:
        # Events pruned or written by an older version: the job row is all there is.
        if attempt != job.attempt:
            return None
        started_at = job.created_at
    # Not ended by its events: the current attempt, or a copy of a move not yet stopped.
    live = {job.attempt, serving_attempt(job.submission_id, job.attempt)}
    if job.state in _RUN_STATES and (attempt in live or job.move is not None):
        return AttemptRun(started_at=started_at, ended_at=None)
    return AttemptRun(started_at=started_at, ended_at=job.finished_at or job.updated_at)


_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


def wall_duration(clock: Clock, seconds: float) -> timedelta:
    """``seconds`` of wall-clock time as scheduler time (the same unless the clock is scaled).

    ``from_wall`` is affine, so the difference of two mapped instants ``seconds`` apart is the
    answer wherever they lie; the clock's own ``now`` keeps a scaled clock's arithmetic near
    its anchor (an instant far from it would overflow ``datetime``)."""
    span = timedelta(seconds=seconds)
    for base in (clock.now(), _EPOCH):
        try:
            return clock.from_wall(base + span) - clock.from_wall(base)
        except OverflowError:
            continue
    return span


def attempt_open(run: AttemptRun | None, now: datetime, grace: timedelta) -> bool:
    """Whether an attempt still accepts reports (and its token still works) at ``now``:
    while it runs, and ``grace`` after it ended."""
    if run is None:
        return False
    return run.ended_at is None or now <= run.ended_at + grace


def record_energy(
    ctx: ServiceContext, job_id: str, principal: Principal, reports: Sequence[EnergyReport]
) -> tuple[int, int]:
    """Store a worker's reports (times mapped from the worker's wall clock into scheduler time).

    Only the job's own token (for its own attempt) or an admin may report. Returns
    (accepted, duplicates). Raises Forbidden, JobNotFound, InvalidJobSpec (an impossible report,
    naming it), EnergyConflict (a conflicting repeat, an overlap, a closed attempt).
    """
    if not (principal.is_admin or (principal.role is Role.JOB and principal.job_id == job_id)):
        raise Forbidden("only the job's own token may report its energy")
    job = ctx.store.get_job(job_id)
    events = ctx.store.events(job_id)
    now = ctx.clock.now()
    runs: dict[int, AttemptRun | None] = {}
    mapped = []
    for i, r in enumerate(reports):
        field = f"reports.{i}"
        if r.job_id != job_id:
            raise InvalidJobSpec(f"{field}.job_id", f"report for {r.job_id!r} posted to {job_id!r}")
        if principal.attempt is not None and r.attempt != principal.attempt:
            raise Forbidden(f"this token reports for attempt {principal.attempt} only")
        problem = report_problem(r)
        if problem:
            raise InvalidJobSpec(field, problem)
        report = dataclasses.replace(
            r,
            interval_start=ctx.clock.from_wall(r.interval_start),
            interval_end=ctx.clock.from_wall(r.interval_end),
        )
        if r.attempt not in runs:
            runs[r.attempt] = attempt_run(job, events, r.attempt)
        _check_within_run(ctx, report, runs[r.attempt], now, field)
        mapped.append(report)
    accepted = ctx.store.add_energy_reports(mapped)
    ctx.counters["energy_reports_total"] += accepted
    return accepted, len(mapped) - accepted


def _check_within_run(
    ctx: ServiceContext, report: EnergyReport, run: AttemptRun | None, now: datetime, field: str
) -> None:
    if run is None:
        raise EnergyConflict(f"attempt {report.attempt} of {report.job_id} never ran")
    if not attempt_open(run, now, wall_duration(ctx.clock, ATTEMPT_GRACE_S)):
        raise EnergyConflict(
            f"attempt {report.attempt} ended more than {ATTEMPT_GRACE_S:.0f} s ago; "
            "it takes no more reports"
        )
    slack = wall_duration(ctx.clock, RUN_TOLERANCE_S)
    end = run.ended_at or now
    if report.interval_start < run.started_at - slack or report.interval_end > end + slack:
        raise InvalidJobSpec(
            f"{field}.interval_start",
            f"interval {report.interval_start.isoformat()} to {report.interval_end.isoformat()} "
            f"lies outside attempt {report.attempt}'s run ({run.started_at.isoformat()} to "
            f"{end.isoformat()}, ±{RUN_TOLERANCE_S:.0f} s)",
        )
