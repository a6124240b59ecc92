"""Record what a job did (SCI's R): its worker's running total of steps or requests."""

from __future__ import annotations

from scheduler.domain import Forbidden, InvalidJobSpec, Principal, Role
from scheduler.domain.energy import ATTEMPT_GRACE_S
from scheduler.domain.progress import UNIT_BY_KIND, JobProgress, ProgressConflict
from scheduler.service.context import ServiceContext
from scheduler.service.energy import attempt_open, attempt_run, wall_duration


def record_progress(
    ctx: ServiceContext,
    job_id: str,
    principal: Principal,
    *,
    attempt: int,
    units: float,
    unit: str | None = None,
) -> tuple[JobProgress, bool]:
    """Store ``units`` as the total of ``job_id``'s ``attempt``; returns what is stored and
    whether this call changed it (False: the same total again).

    Only the job's own token, for its own attempt, or an admin may report. ``unit`` defaults to
    the job kind's (``steps``, ``requests``) and must be it. Raises Forbidden, JobNotFound,
    InvalidJobSpec (another unit), ProgressConflict (a lower total of the same attempt, an
    older attempt than the stored one, an attempt that never ran or ended more than
    ``ATTEMPT_GRACE_S`` ago).
    """
    if not (principal.is_admin or (principal.role is Role.JOB and principal.job_id == job_id)):
        raise Forbidden("only the job's own token may report its progress")
    if principal.attempt is not None and attempt != principal.attempt:
        raise Forbidden(f"this token reports for attempt {principal.attempt} only")
    job = ctx.store.get_job(job_id)
    expected = UNIT_BY_KIND.get(job.spec.kind.value, "units")
    if unit is not None and unit != expected:
        raise InvalidJobSpec("unit", f"a {job.spec.kind.value} job counts {expected}, not {unit!r}")
    run = attempt_run(job, ctx.store.events(job_id), attempt)
    if run is None:
        raise ProgressConflict(f"attempt {attempt} of {job_id} never ran")
    if not attempt_open(run, ctx.clock.now(), wall_duration(ctx.clock, ATTEMPT_GRACE_S)):
        raise ProgressConflict(
            f"attempt {attempt} ended more than {ATTEMPT_GRACE_S:.0f} s ago; "
            "it takes no more progress"
        )
    progress = JobProgress(job_id=job_id, attempt=attempt, units=units, unit=expected)
    changed = ctx.store.record_progress(progress)
    if changed:
        ctx.counters["progress_reports_total"] += 1
    return progress, changed
