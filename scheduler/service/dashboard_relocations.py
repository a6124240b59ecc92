"""The dashboard's recent relocations: completed moves, moves in flight and rolled-back ones.

Read in a fixed number of queries whatever the fleet: the newest ``DEPLOYMENT_LIMIT``
deployments (the list's kind index), their relocation events in one read, their energy reports
in one, and each region's actuals once over the span the shown moves cover. A completed move's
measured saving is judged as ``GET /v1/deployments/{id}/relocations`` judges it
(``scheduler.service.deployments``): the new copy's energy since the switch, priced where it
went plus the old copy's overlap, against the same energy where it was; None until actuals
cover it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from scheduler.domain import EnergyReport, Forecast, ForecastUnavailable, Job, JobKind, JobState
from scheduler.domain.deployments import Relocation
from scheduler.planning.relocation import measured_saving
from scheduler.service.context import ServiceContext
from scheduler.service.deployments import Profile, move_profiles

DEPLOYMENT_LIMIT = 100
MOVE_LIMIT = 20
ROLLED_BACK = "relocation-failed"
_EVENT_LIMIT = 500
# The reasons ``scheduler.service.relocating`` and ``scheduler.service.moving`` write: a rolled
# back move keeps no record but its events, so its regions and expected saving come from them.
_SAVING_RE = re.compile(r"expected to save (-?[\d.]+) g \((-?[\d.]+) %\)")
_START_RE = re.compile(r"^relocating from (\S+) to (\S+) ")
_ROLLBACK_RE = re.compile(r"^move to (\S+) rolled back, staying in (\S+?): (.*)$", re.S)


def recent_relocations(ctx: ServiceContext) -> dict[str, Any]:
    """The newest moves (``MOVE_LIMIT``), newest first, and counts by outcome over them."""
    deployments, _ = ctx.store.list_jobs(
        kind=JobKind.DEPLOYMENT, limit=DEPLOYMENT_LIMIT, count=False
    )
    by_id = {j.id: j for j in deployments}
    moves: list[dict[str, Any]] = []
    for job in deployments:
        for i, moved in enumerate(job.relocations):
            moves.append(_completed_row(job, moved, i))
        if job.move is not None:
            move = job.move
            moves.append(
                {
                    **_job_fields(job),
                    "from_region": move.from_region,
                    "to_region": move.to_region,
                    "at": move.started_at.isoformat(),
                    "outcome": "in progress",
                    "phase": move.phase.value,
                    "expected_saving_g": move.expected_saving_g,
                    "expected_saving_pct": move.expected_saving_pct,
                    "measured_saving_g": None,
                    "measured_saving_pct": None,
                    "reason": None,
                }
            )
    events = ctx.store.events_of(list(by_id), ("state", ROLLED_BACK), limit=_EVENT_LIMIT)
    moves.extend(_rolled_back(by_id, events))
    moves.sort(key=lambda m: m["at"], reverse=True)
    shown = moves[:MOVE_LIMIT]
    _measure(ctx, [m for m in shown if m["outcome"] == "relocated"], by_id)
    counts = {"relocated": 0, "rolled back": 0, "in progress": 0}
    for m in shown:
        counts[m["outcome"]] += 1
    return {"moves": shown, "counts": counts, "deployments_read": len(deployments)}


def _job_fields(job: Job) -> dict[str, Any]:
    return {"job_id": job.id, "name": job.spec.name, "tenant": job.tenant}


def _completed_row(job: Job, moved: Relocation, index: int) -> dict[str, Any]:
    return {
        **_job_fields(job),
        "from_region": moved.from_region,
        "to_region": moved.to_region,
        "at": moved.switched_at.isoformat(),
        "outcome": "relocated",
        "phase": None,
        "expected_saving_g": moved.expected_saving_g,
        "expected_saving_pct": moved.expected_saving_pct,
        "measured_saving_g": None,
        "measured_saving_pct": None,
        "reason": None,
        # Which of the job's moves, to judge it against its successor (not sent).
        "_index": index,
    }


def _rolled_back(by_id: dict[str, Job], events: Sequence[Any]) -> list[dict[str, Any]]:
    """A row per rollback event, with the expected saving of the move's start event (the
    newest ``relocating`` event before it)."""
    rows = []
    starts = sorted(
        (e for e in events if e.kind == "state" and e.to_state is JobState.RELOCATING),
        key=lambda e: e.at,
    )
    for event in events:
        if event.kind != ROLLED_BACK or event.job_id not in by_id:
            continue
        match = _ROLLBACK_RE.match(event.reason)
        to_region, from_region, why = match.groups() if match else (None, None, event.reason)
        start = next(
            (s for s in reversed(starts) if s.job_id == event.job_id and s.at <= event.at),
            None,
        )
        saving = _SAVING_RE.search(start.reason) if start is not None else None
        started = _START_RE.match(start.reason) if start is not None else None
        rows.append(
            {
                **_job_fields(by_id[event.job_id]),
                "from_region": from_region or (started.group(1) if started else None),
                "to_region": to_region or (started.group(2) if started else None),
                "at": event.at.isoformat(),
                "outcome": "rolled back",
                "phase": None,
                "expected_saving_g": float(saving.group(1)) if saving else None,
                "expected_saving_pct": float(saving.group(2)) if saving else None,
                "measured_saving_g": None,
                "measured_saving_pct": None,
                "reason": why,
            }
        )
    return rows


def _measure(ctx: ServiceContext, rows: list[dict[str, Any]], by_id: dict[str, Job]) -> None:
    """Fill the measured saving of completed moves, in place; drop the rows' ``_index``."""
    if not rows:
        return
    per_job: dict[str, list[EnergyReport]] = {}
    for report in ctx.store.energy_reports(sorted({r["job_id"] for r in rows})):
        per_job.setdefault(report.job_id, []).append(report)
    judged: list[tuple[dict[str, Any], Relocation, Profile, Profile]] = []
    for row in rows:
        job = by_id[row["job_id"]]
        i = row.pop("_index")
        until = job.relocations[i + 1].switched_at if i + 1 < len(job.relocations) else None
        moved = job.relocations[i]
        judged.append((row, moved, *move_profiles(moved, per_job.get(job.id, []), until)))
    intervals = [iv for _, _, profile, overlap in judged for iv in (*profile, *overlap)]
    if not intervals:
        return
    # One read per region over every shown move's energy (the intervals priced, as the
    # per-deployment view reads them one move at a time).
    start, end = min(s for s, _, _ in intervals), max(e for _, e, _ in intervals)
    actuals: dict[str, Forecast | None] = {}
    for _, moved, _, _ in judged:
        for name in (moved.from_region, moved.to_region):
            if name in ctx.regions and name not in actuals:
                region = ctx.regions[name]
                actuals[name] = ctx.store.actuals(
                    region.grid_zone, start, end, provider=region.provider
                )
    for row, moved, profile, overlap in judged:
        source, target = actuals.get(moved.from_region), actuals.get(moved.to_region)
        if not profile or source is None or target is None:
            continue
        try:
            measured = measured_saving(
                profile,
                overlap,
                from_pue=ctx.regions[moved.from_region].pue,
                from_actuals=source,
                to_pue=ctx.regions[moved.to_region].pue,
                to_actuals=target,
            )
        except ForecastUnavailable:
            continue
        row["measured_saving_g"] = measured.saving_g
        row["measured_saving_pct"] = measured.saving_pct
