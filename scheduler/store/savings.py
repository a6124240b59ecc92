"""The savings report's sums over any number of jobs, computed by the database.

Two GROUP BY queries replace loading every finished job and its energy reports into Python:
the counted jobs per tenant, region and start day, and their energy per (tenant, region, home
region, hour drawn, hour it would have been drawn at home had the job started at submit time).
Energy is attributed to the hour its report interval starts in (runners report every 30 s).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from scheduler.domain import TERMINAL_STATES, JobState, MeterMethod
from scheduler.domain.savings import EnergyBucket, JobCount
from scheduler.store.engine import SqlAdapter, read_transaction
from scheduler.store.tables import energy_reports, jobs

_COUNTED = [s.value for s in TERMINAL_STATES | {JobState.RUNNING, JobState.RELOCATING}]


def _epoch_s(dialect: str, column: Any) -> Any:
    """POSIX seconds of a UtcDateTime column, in SQL (SQLite stores naive UTC text)."""
    if dialect == "sqlite":
        return sa.cast(sa.func.strftime("%s", column), sa.Integer)
    return sa.extract("epoch", column)


def _floor_div(dialect: str, seconds: Any, unit_s: int) -> Any:
    if dialect == "sqlite":
        return sa.cast(seconds / unit_s, sa.Integer)  # integer division, epochs are positive
    return sa.cast(sa.func.floor(seconds / unit_s), sa.BigInteger)


def _from_epoch(value: Any, unit_s: int) -> datetime:
    """An hour or day bucket as an aware UTC datetime: SQLite gives its number since the
    epoch, PostgreSQL a naive UTC timestamp (``date_trunc`` of ``timezone('UTC', ...)``)."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC)
    return datetime.fromtimestamp(int(value) * unit_s, tz=UTC)


class SqlSavingsStore(SqlAdapter):
    """The savings report's sums, computed by the database over any number of jobs."""

    def _counted(
        self,
        tenant: str | None,
        region: str | None,
        group_id: str | None,
        start: datetime | None,
        end: datetime | None,
    ) -> tuple[Any, list[sa.ColumnElement[bool]]]:
        ran_in = sa.func.coalesce(jobs.c.region, jobs.c.plan_region, jobs.c.home_region)
        conditions: list[sa.ColumnElement[bool]] = [
            jobs.c.state.in_(_COUNTED),
            jobs.c.started_at.is_not(None),
        ]
        if tenant is not None:
            conditions.append(jobs.c.tenant == tenant)
        if region is not None:
            conditions.append(ran_in == region)
        if group_id is not None:
            conditions.append(jobs.c.group_id == group_id)
        if start is not None:
            conditions.append(jobs.c.started_at >= start)
        if end is not None:
            conditions.append(jobs.c.started_at < end)
        return ran_in, conditions

    def savings_job_counts(
        self,
        *,
        tenant: str | None = None,
        region: str | None = None,
        group_id: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> list[JobCount]:
        """Jobs that started and count (finished or running), per tenant, region they ran in
        and UTC day they started; ``start``/``end`` bound the start time (end exclusive)."""
        dialect = self._engine.dialect.name
        ran_in, conditions = self._counted(tenant, region, group_id, start, end)
        day = _floor_div(dialect, _epoch_s(dialect, jobs.c.started_at), 86400)
        query = (
            sa.select(jobs.c.tenant, ran_in, day, sa.func.count())
            .where(*conditions)
            .group_by(jobs.c.tenant, ran_in, day)
        )
        with read_transaction(self._engine) as conn:
            rows = conn.execute(query).all()
        return [
            JobCount(tenant=t, region=r, day=_from_epoch(d, 86400), jobs=int(n))
            for t, r, d, n in rows
        ]

    def savings_energy_buckets(
        self,
        *,
        tenant: str | None = None,
        region: str | None = None,
        group_id: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> list[EnergyBucket]:
        """The counted jobs' energy per hour it was drawn (by report interval start), and again
        (``baseline``) per hour it would have been drawn at home had the job started at submit
        time: emissions and baseline are separable sums, so rows stay per hour, not per job."""
        dialect = self._engine.dialect.name
        ran_in, conditions = self._counted(tenant, region, group_id, start, end)
        at = energy_reports.c.interval_start
        if dialect == "postgresql":
            # Timestamp arithmetic, not epoch numerics (numeric division is the slow part).
            hour: Any = sa.func.date_trunc("hour", sa.func.timezone("UTC", at))
            base: Any = sa.func.date_trunc(
                "hour", sa.func.timezone("UTC", at - (jobs.c.started_at - jobs.c.created_at))
            )
        else:
            at_s = _epoch_s(dialect, at)
            delay_s = _epoch_s(dialect, jobs.c.started_at) - _epoch_s(dialect, jobs.c.created_at)
            hour = _floor_div(dialect, at_s, 3600)
            base = _floor_div(dialect, at_s - delay_s, 3600)
        estimated = sa.case(
            (energy_reports.c.method == MeterMethod.ESTIMATE.value, energy_reports.c.energy_j),
            else_=0.0,
        )
        drawn = (
            sa.select(
                jobs.c.tenant.label("tenant"),
                ran_in.label("region"),
                jobs.c.home_region.label("home"),
                hour.label("hour"),
                base.label("base"),
                energy_reports.c.energy_j.label("energy_j"),
                estimated.label("estimated_j"),
            )
            .select_from(energy_reports.join(jobs, energy_reports.c.job_id == jobs.c.id))
            .where(*conditions)
            .subquery()
        )
        keys = (drawn.c.tenant, drawn.c.region, drawn.c.home)
        sums = (sa.func.sum(drawn.c.energy_j), sa.func.sum(drawn.c.estimated_j))
        with read_transaction(self._engine) as conn:
            if dialect == "postgresql":
                # Room to hash the join and both groupings in memory rather than sort on disk.
                conn.execute(sa.text("SET LOCAL work_mem = '64MB'"))
                # One pass: both groupings of the same join (GROUPING SETS).
                query = sa.select(
                    *keys, drawn.c.hour, drawn.c.base, *sums, sa.func.grouping(drawn.c.hour)
                ).group_by(
                    sa.func.grouping_sets(
                        sa.tuple_(*keys, drawn.c.hour), sa.tuple_(*keys, drawn.c.base)
                    )
                )
                rows = [
                    (t, r, h, b if g else k, e, x, bool(g))
                    for t, r, h, k, b, e, x, g in conn.execute(query).all()
                ]
            else:
                rows = [
                    (*row, baseline)
                    for column, baseline in ((drawn.c.hour, False), (drawn.c.base, True))
                    for row in conn.execute(
                        sa.select(*keys, column, *sums).group_by(*keys, column)
                    ).all()
                ]
        return [
            EnergyBucket(
                tenant=t,
                region=r,
                home_region=h,
                hour=_from_epoch(k, 3600),
                energy_j=float(e),
                estimated_j=float(x or 0.0),
                baseline=baseline,
            )
            for t, r, h, k, e, x, baseline in rows
        ]
