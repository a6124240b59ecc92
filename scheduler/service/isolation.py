"""Failure isolation for the cycles: one job's fault quarantines that job, one region's outage
marks that region down, and the cycle goes on with the rest.

A cycle handles each job inside ``isolated``: an error that the store can still be reached
after is that job's (bad numbers, a region removed from the configuration, a bug its data
triggers), so the job is set aside with an event and a metric; an error with the store
unreachable is an outage, and it ends the cycle (``scheduler.periodic`` logs it once).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

from scheduler.domain import InvalidTransition, JobEvent, Region
from scheduler.service.context import ServiceContext

log = logging.getLogger(__name__)
ACTOR = "scheduler"


def quarantine(ctx: ServiceContext, job_id: str, stage: str, reason: str) -> None:
    """Set ``job_id`` aside from every cycle, with an event saying why, a metric and a log line.
    Clearing it is an operator's decision (``UPDATE jobs SET quarantine = NULL``, or cancel)."""
    text = f"quarantined by the {stage} cycle: {reason}"[:2000]
    event = JobEvent(job_id=job_id, at=ctx.clock.now(), kind="quarantine", actor=ACTOR, reason=text)
    if ctx.store.quarantine_job(job_id, text, event):
        ctx.counters["jobs_quarantined_total"] += 1
        ctx.counters[f"jobs_quarantined_{stage}_total"] += 1
        log.warning("job %s %s", job_id, text)


@contextmanager
def isolated(ctx: ServiceContext, job_id: str, stage: str) -> Iterator[None]:
    """Run one job's step; a fault of that job quarantines it instead of ending the cycle.

    A lost race (InvalidTransition) is normal and only logged. Any other exception is caught
    on purpose, although only shells catch broad ones: the cycle is the shell of each job's
    step, and no job's data may stop the others. When the store is unreachable the exception
    is re-raised: that is an outage, not the job's fault.
    """
    try:
        yield
    except InvalidTransition:
        log.info("job %s changed state concurrently during %s", job_id, stage)
    except Exception as e:
        try:
            ctx.store.ping()
        except Exception:
            raise e from None
        log.exception("job %s failed in the %s cycle", job_id, stage)
        quarantine(ctx, job_id, stage, f"{type(e).__name__}: {e}")


def region_down(ctx: ServiceContext, region: Region, why: object) -> None:
    """Mark ``region``'s cluster unreachable (logged and counted once per outage); the planner
    stops placing jobs there until a call to it succeeds."""
    if region.name in ctx.regions_down:
        return
    ctx.regions_down[region.name] = (ctx.clock.now(), str(why))
    ctx.last_errors[f"ray:{region.name}"] = str(why)
    ctx.counters["ray_region_down_total"] += 1
    log.warning(
        "Ray of region %s is unreachable (%s): marked down, its jobs wait or move",
        region.name,
        why,
        extra={"fields": {"event": "region_down", "region": region.name}},
    )
    ctx.wake_planner.set()


def region_up(ctx: ServiceContext, region: Region) -> None:
    """Record a successful call to ``region``'s cluster; ends its outage if it had one."""
    ctx.region_seen_ok[region.name] = time.monotonic()
    down = ctx.regions_down.pop(region.name, None)
    if down is None:
        return
    ctx.last_errors.pop(f"ray:{region.name}", None)
    ctx.counters["ray_region_up_total"] += 1
    down_s = (ctx.clock.now() - down[0]).total_seconds()
    log.warning(
        "Ray of region %s is reachable again after %.0f s",
        region.name,
        down_s,
        extra={"fields": {"event": "region_up", "region": region.name}},
    )
    ctx.wake_planner.set()
