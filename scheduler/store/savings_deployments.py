"""Deployments in the savings report's SQL sums: relocated ones, and those sharing a GPU.

Both are few (deployments, not the million training jobs), so they are read per job:

* A deployment that ever moved (``moved_at`` set) drew energy in more than one region: each
  copy (attempt) in the region it ran in (``scheduler.domain.deployments.attempt_region``).
  Its energy is left out of the plain hourly sums and the rollup (``moved_at IS NULL`` there)
  and summed here per job, attempt and hour, then filed under the job's region like any job's
  but priced where each copy ran (``EnergyBucket.drawn_in``). Its moves and their expected
  saving become ``JobCount.relocations`` under the same keys as its job count.
* A deployment holding a share of one GPU gives its run bounds (``RunBounds``) for the packing
  credit (``scheduler.reports.packing_credit``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from scheduler.domain import TERMINAL_STATES, JobKind, MeterMethod
from scheduler.domain.deployments import attempt_region
from scheduler.domain.savings import EnergyBucket, JobCount, RunBounds
from scheduler.store.deployment_rows import relocations_from_documents
from scheduler.store.rollup import HOUR_S, epoch_s, hour_of, ran_in
from scheduler.store.tables import energy_reports, jobs

_TERMINAL = {s.value for s in TERMINAL_STATES}
# Only deployments move or hold a share of a GPU; the kind also lets the database start from
# its (kind, created_at) index rather than read every job.
_DEPLOYMENT = jobs.c.kind == JobKind.DEPLOYMENT.value


def not_moved() -> sa.ColumnElement[bool]:
    """Jobs whose energy the plain hourly sums hold: those that never moved."""
    return jobs.c.moved_at.is_(None)


def _hour(value: Any) -> datetime:
    return datetime.fromtimestamp(int(value) * HOUR_S, tz=UTC)


def _moved_jobs(
    conn: Connection, conditions: Sequence[sa.ColumnElement[bool]], split_col: Any
) -> dict[str, Any]:
    query = sa.select(
        jobs.c.id,
        jobs.c.tenant,
        ran_in().label("ran_in"),
        jobs.c.home_region,
        (split_col if split_col is not None else sa.null()).label("split"),
        jobs.c.started_at,
        jobs.c.relocations,
    ).where(*conditions, _DEPLOYMENT, jobs.c.moved_at.is_not(None))
    return {row.id: row for row in conn.execute(query).all()}


def moved_buckets(
    conn: Connection, conditions: Sequence[sa.ColumnElement[bool]], split_col: Any
) -> list[EnergyBucket]:
    """The moved deployments' energy per hour drawn (priced where each copy ran) and per hour
    it would have been drawn at home (the baseline), in ``EnergyBucket``'s shape."""
    moved = _moved_jobs(conn, conditions, split_col)
    if not moved:
        return []
    dialect = conn.dialect.name
    at_s = epoch_s(dialect, energy_reports.c.interval_start)
    delay_s = epoch_s(dialect, jobs.c.started_at) - epoch_s(dialect, jobs.c.created_at)
    estimated = sa.case(
        (energy_reports.c.method == MeterMethod.ESTIMATE.value, energy_reports.c.energy_j),
        else_=0.0,
    )
    out: list[EnergyBucket] = []
    for baseline, hour in (
        (False, hour_of(dialect, at_s)),
        (True, hour_of(dialect, at_s - delay_s)),
    ):
        keys = (energy_reports.c.job_id, energy_reports.c.attempt, hour)
        query = (
            sa.select(*keys, sa.func.sum(energy_reports.c.energy_j), sa.func.sum(estimated))
            .select_from(energy_reports.join(jobs, energy_reports.c.job_id == jobs.c.id))
            .where(jobs.c.id.in_(list(moved)))
            .group_by(*keys)
        )
        for job_id, attempt, at_hour, energy_j, estimated_j in conn.execute(query).all():
            job = moved[job_id]
            history = relocations_from_documents(job.relocations)
            drawn_in = attempt_region(history, int(attempt), job.ran_in)
            out.append(
                EnergyBucket(
                    tenant=job.tenant,
                    region=job.ran_in,
                    home_region=job.home_region,
                    hour=_hour(at_hour),
                    energy_j=float(energy_j),
                    estimated_j=float(estimated_j or 0.0),
                    baseline=baseline,
                    split_key=job.split if split_col is not None else None,
                    drawn_in=None if baseline or drawn_in == job.ran_in else drawn_in,
                )
            )
    return out


def moved_counts(
    conn: Connection, conditions: Sequence[sa.ColumnElement[bool]], split_col: Any
) -> list[JobCount]:
    """The moves of the moved deployments, one ``JobCount`` (of no jobs: they are counted
    already) per deployment with a completed move, keyed like its job count (start day)."""
    out = []
    for job in _moved_jobs(conn, conditions, split_col).values():
        history = relocations_from_documents(job.relocations)
        if not history:
            continue
        day = job.started_at.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        out.append(
            JobCount(
                tenant=job.tenant,
                region=job.ran_in,
                day=day,
                jobs=0,
                split_key=job.split if split_col is not None else None,
                relocations=len(history),
                relocation_expected_saving_g=math.fsum(r.expected_saving_g for r in history),
            )
        )
    return out


def shared_run_bounds(
    conn: Connection, conditions: Sequence[sa.ColumnElement[bool]]
) -> list[RunBounds]:
    """The counted jobs holding a share of one GPU (``0 < gpus < 1``) that have drawn energy,
    with their run bounds."""
    first = sa.func.min(energy_reports.c.interval_start)
    last = sa.func.max(energy_reports.c.interval_end)
    query = (
        sa.select(
            jobs.c.id,
            ran_in(),
            jobs.c.home_region,
            jobs.c.gpus,
            jobs.c.state,
            jobs.c.started_at,
            jobs.c.finished_at,
            first,
            last,
        )
        .select_from(jobs.join(energy_reports, energy_reports.c.job_id == jobs.c.id))
        .where(*conditions, _DEPLOYMENT, jobs.c.gpus > 0, jobs.c.gpus < 1)
        .group_by(
            jobs.c.id,
            ran_in(),
            jobs.c.home_region,
            jobs.c.gpus,
            jobs.c.state,
            jobs.c.started_at,
            jobs.c.finished_at,
        )
    )
    return [
        RunBounds(
            job_id=row[0],
            region=row[1],
            home_region=row[2],
            gpu_share=float(row[3]),
            terminal=row[4] in _TERMINAL,
            started_at=_aware(row[5]),
            finished_at=None if row[6] is None else _aware(row[6]),
            first_interval_start=_aware(row[7]),
            last_interval_end=_aware(row[8]),
        )
        for row in conn.execute(query).all()
    ]


def _aware(value: datetime) -> datetime:
    """min()/max() of a UtcDateTime column come back without its type on SQLite: as text or a
    naive datetime, both UTC."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
