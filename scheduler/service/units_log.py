"""A job's count of functional units recovered from its attempt's log (``GREENLIGHT_UNITS``
lines, ``scheduler.service.energy_log``), for counts the API never received."""

from __future__ import annotations

import logging

from scheduler.domain import Job
from scheduler.domain.progress import UNIT_BY_KIND, ProgressConflict
from scheduler.service.context import ServiceContext
from scheduler.service.energy_log import parse_units_lines

log = logging.getLogger(__name__)


def recover_units(ctx: ServiceContext, job: Job, attempt: int, text: str) -> bool:
    """Store the highest count ``attempt`` wrote into ``text`` (its log) when it supersedes
    the stored one; True when it changed it. The same count again changes nothing, and a
    lower one, or an attempt older than the stored count's, is left out: the store's total
    only grows, as with POST /v1/jobs/{id}/progress."""
    unit = UNIT_BY_KIND.get(job.spec.kind.value, "units")
    progress, refused = parse_units_lines(text, job.id, attempt, unit)
    if refused:
        ctx.counters["units_log_lines_refused_total"] += refused
    if progress is None:
        return False
    try:
        changed = ctx.store.record_progress(progress)
    except ProgressConflict as e:  # the store holds more, or a later attempt's count
        log.info("unit count in the log of %s left out: %s", job.submission_id, e)
        return False
    if changed:
        ctx.counters["progress_from_logs_total"] += 1
        log.info(
            "recovered %s's count from its log: %g %s", job.submission_id, progress.units, unit
        )
    return changed
