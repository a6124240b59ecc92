"""The admin dashboard's read model: one document with everything the page draws.

The headline figures and the groupings are the savings report's own (``report_to_dict``), so
the dashboard and ``/v1/reports/savings`` can never disagree. Around them: per region, the
forecast against the actual intensity over a window around now with the windows where jobs ran
or will run; the live queue; recent relocations of deployments; and the recent faults and
warnings. The report is grouped by job kind, so SCI per R (per 1,000 steps, per 1,000
requests) can be shown per kind: a fleet's total mixes units and has none. Admin only.

Its cost does not grow with the queue: a fixed number of reads besides the report's own.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from scheduler.domain import LIVE_STATES, Forbidden, Forecast, Job, JobState, Principal, SeriesKind
from scheduler.reports.render import report_to_dict
from scheduler.service import views
from scheduler.service.context import ServiceContext
from scheduler.service.dashboard_relocations import recent_relocations

PAST = timedelta(hours=24)
FUTURE = timedelta(hours=24)
QUEUE_LIMIT = 200
# Kinds of job event that tell an admin something went off the plain path.
NOTABLE_EVENTS = frozenset({"warning", "fallback", "quarantine", "relocation", "late"})
EVENT_LIMIT = 30
# The live jobs whose notable events are shown (the newest ones).
EVENT_JOBS = 50
# Jobs whose windows are shaded on the intensity charts: those that ran in the chart's span.
RAN_STATES = (JobState.RUNNING, JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)


def dashboard(ctx: ServiceContext, principal: Principal, period: str = "day") -> dict[str, Any]:
    """The dashboard document (JSON-ready). Raises Forbidden for anyone but an admin."""
    if not principal.is_admin:
        raise Forbidden("the dashboard is for admins")
    now = ctx.clock.now()
    report = report_to_dict(views.savings_report(ctx, principal, period=period, group_by="kind"))
    # Per-job rows belong to the report's own endpoint; the page draws totals and groups.
    report.pop("jobs", None)
    live, _ = ctx.store.list_jobs(states=LIVE_STATES, limit=QUEUE_LIMIT)
    ran, _ = ctx.store.list_jobs(states=RAN_STATES, limit=QUEUE_LIMIT)
    return {
        "generated_at": now.isoformat(),
        "span": {"start": (now - PAST).isoformat(), "end": (now + FUTURE).isoformat()},
        "report": report,
        "regions": [_region(ctx, name, now, [*live, *ran]) for name in ctx.regions],
        "queue": _queue(ctx, live, now),
        "faults": [
            {"source": source, "message": message}
            for source, message in sorted(ctx.last_errors.items())
        ],
        "events": _events(ctx, live),
        "relocations": recent_relocations(ctx),
    }


def _points(series: Forecast | None, start: datetime, end: datetime) -> list[list[Any]]:
    if series is None:
        return []
    return [
        [p.valid_at.isoformat(), p.g_per_kwh] for p in series.points if start <= p.valid_at < end
    ]


def _region(ctx: ServiceContext, name: str, now: datetime, jobs: list[Job]) -> dict[str, Any]:
    region = ctx.regions[name]
    start, end = now - PAST, now + FUTURE
    forecast = ctx.store.latest_forecast(
        region.grid_zone, now, SeriesKind.FORECAST, provider=region.provider
    )
    actual = ctx.store.actuals(region.grid_zone, start, now, provider=region.provider)
    windows = []
    for job in jobs:
        for w_start, w_end, state in _job_windows(job, now):
            if job_region(job) == name and w_end > start and w_start < end:
                windows.append(
                    {
                        "job_id": job.id,
                        "name": job.spec.name,
                        "state": state,
                        "start": max(w_start, start).isoformat(),
                        "end": min(w_end, end).isoformat(),
                    }
                )
    return {
        "name": name,
        "grid_zone": region.grid_zone,
        "provider": region.provider,
        "forecast_issued_at": forecast.issued_at.isoformat() if forecast else None,
        "forecast": _points(forecast, now - timedelta(hours=1), end),
        "actual": _points(actual, start, now),
        "windows": windows,
        "last_error": ctx.last_errors.get(name),
    }


def job_region(job: Job) -> str | None:
    """Where the job runs, or is planned to."""
    if job.region is not None:
        return job.region
    return job.plan.region if job.plan is not None else None


def _job_windows(job: Job, now: datetime) -> list[tuple[datetime, datetime, str]]:
    """Time spans to shade: the real run for a started job, the planned windows otherwise."""
    if job.started_at is not None:
        return [(job.started_at, job.finished_at or now, "ran" if job.finished_at else "running")]
    if job.plan is not None:
        return [(w.start, w.end, "planned") for w in job.plan.windows]
    return []


def _queue(ctx: ServiceContext, live: list[Job], now: datetime) -> dict[str, Any]:
    counts = Counter({s.value: 0 for s in LIVE_STATES})
    counts.update({s.value: n for s, n in ctx.store.count_by_state(LIVE_STATES).items()})
    rows = []
    for job in live:
        deadline = job.latest_start()
        late = (
            job.state is JobState.PLANNED
            and job.plan is not None
            and (deadline is not None and job.plan.start > deadline)
        )
        rows.append(
            {
                "id": job.id,
                "tenant": job.tenant,
                "name": job.spec.name,
                "kind": job.kind.value,
                "state": job.state.value,
                "region": job_region(job),
                "start": (job.started_at or (job.plan.start if job.plan else None)),
                "end": job.plan.end if job.plan else None,
                "latest_start": deadline,
                "late": late
                or (deadline is not None and job.state is JobState.PENDING and deadline < now),
            }
        )
    for row in rows:
        for key in ("start", "end", "latest_start"):
            value = row[key]
            row[key] = value.isoformat() if isinstance(value, datetime) else None
    return {"counts": dict(counts), "jobs": rows, "shown": len(rows)}


def _events(ctx: ServiceContext, live: list[Job]) -> list[dict[str, Any]]:
    """The newest notable events of the newest live jobs, in one read."""
    ids = [job.id for job in live[:EVENT_JOBS]]
    return [
        {
            "at": event.at.isoformat(),
            "job_id": event.job_id,
            "kind": event.kind,
            "reason": event.reason,
        }
        for event in ctx.store.events_of(ids, NOTABLE_EVENTS, limit=EVENT_LIMIT)
    ]
