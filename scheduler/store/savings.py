"""The savings report's sums over any number of jobs, computed by the database.

Two GROUP BY queries replace loading every finished job and its energy reports into Python:
the counted jobs per tenant, region and start day, and their energy per (tenant, region, home
region, hour drawn, hour it would have been drawn at home had the job started at submit time).
Energy is attributed to the hour its report interval starts in (runners report every 30 s).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from scheduler.domain import TERMINAL_STATES, JobState, MeterMethod
from scheduler.domain.savings import EnergyBucket, JobCount, RunBounds
from scheduler.store.engine import read_transaction
from scheduler.store.rollup import RollupView, SqlRollupStore, rollup_view
from scheduler.store.savings_deployments import (
    moved_buckets,
    moved_counts,
    not_moved,
    shared_run_bounds,
)
from scheduler.store.tables import energy_reports, jobs, savings_rollup_energy, savings_rollup_jobs
from scheduler.store.unit_sums import attach_units, unit_sums_query

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


def _split_column(split: str | None) -> Any:
    """The extra grouping column: the job kind, its group id (``-`` without one), or None."""
    if split is None:
        return None
    if split == "kind":
        return jobs.c.kind
    if split == "group":
        return sa.func.coalesce(jobs.c.group_id, "-")
    raise ValueError(f"split must be kind or group; got {split!r}")


def _count(condition: Any) -> Any:
    return sa.func.sum(sa.case((condition, 1), else_=0))


def _from_epoch(value: Any, unit_s: int) -> datetime:
    """An hour or day bucket as an aware UTC datetime: SQLite gives its number since the
    epoch, PostgreSQL a naive UTC timestamp (``date_trunc`` of ``timezone('UTC', ...)``)."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC)
    return datetime.fromtimestamp(int(value) * unit_s, tz=UTC)


@contextmanager
def _snapshot(engine: Engine) -> Iterator[Connection]:
    """A read transaction whose statements all see one snapshot: the rollup, its dirty hours
    and the raw rows must agree (PostgreSQL's default gives each statement its own)."""
    if engine.dialect.name != "postgresql":
        with read_transaction(engine) as conn:
            yield conn
        return
    with engine.connect() as conn:
        conn = conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            yield conn


def _rolled_filters(
    table: sa.Table,
    view: RollupView,
    tenant: str | None,
    region: str | None,
    group_id: str | None,
) -> list[sa.ColumnElement[bool]]:
    out = view.rollup_condition(table)
    if tenant is not None:
        out.append(table.c.tenant == tenant)
    if region is not None:
        out.append(table.c.region == region)
    if group_id is not None:
        out.append(table.c.group_key == group_id)
    return out


def _rolled_split(table: sa.Table, split: str | None) -> list[Any]:
    if split is None:
        return []
    if split == "kind":
        return [table.c.kind]
    return [sa.case((table.c.group_key == "", "-"), else_=table.c.group_key)]


def rolled_counts(
    conn: Connection,
    view: RollupView,
    tenant: str | None,
    region: str | None,
    group_id: str | None,
    split: str | None,
) -> list[Any]:
    """The rollup's job sums in the raw query's row shape: tenant, region, day, [split],
    jobs, delay, GPU-s, core-s, misses, moved in time, moved in space."""
    c = savings_rollup_jobs.c
    keys = [c.tenant, c.region, c.started_hour // 24, *_rolled_split(savings_rollup_jobs, split)]
    query = (
        sa.select(
            *keys,
            *(
                sa.func.sum(col)
                for col in (
                    c.jobs,
                    c.delay_s,
                    c.gpu_s,
                    c.cpu_s,
                    c.deadline_misses,
                    c.moved_in_time,
                    c.moved_in_space,
                )
            ),
        )
        .where(*_rolled_filters(savings_rollup_jobs, view, tenant, region, group_id))
        .group_by(*keys)
    )
    return list(conn.execute(query).all())


def rolled_energy(
    conn: Connection,
    view: RollupView,
    tenant: str | None,
    region: str | None,
    group_id: str | None,
    split: str | None,
) -> list[Any]:
    """The rollup's energy sums in the raw query's row shape: tenant, region, home, [split],
    hour, energy, estimated, baseline."""
    c = savings_rollup_energy.c
    keys = [c.tenant, c.region, c.home_region, *_rolled_split(savings_rollup_energy, split)]
    query = (
        sa.select(*keys, c.hour, sa.func.sum(c.energy_j), sa.func.sum(c.estimated_j), c.baseline)
        .where(*_rolled_filters(savings_rollup_energy, view, tenant, region, group_id))
        .group_by(*keys, c.hour, c.baseline)
    )
    return list(conn.execute(query).all())


class SqlSavingsStore(SqlRollupStore):
    """The savings report's sums, computed by the database over any number of jobs.

    Finished jobs come from the hourly rollup where it answers for them
    (``scheduler.store.rollup``), the rest from the raw rows; ``use_rollup = False`` reads
    raw rows only (the reference the rollup is tested and benchmarked against)."""

    use_rollup = True

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
        split: str | None = None,
        now: datetime | None = None,
        step_s: float = 300.0,
    ) -> list[JobCount]:
        """Jobs that started and count (finished or running), per tenant, region they ran in
        and UTC day they started (and ``split``), with their delay, device-time, deadline and
        moved sums (see ``JobCount``); ``start``/``end`` bound the start time (end exclusive).
        A running job's run time ends at ``now`` (none without ``now``)."""
        dialect = self._engine.dialect.name
        ran_in, conditions = self._counted(tenant, region, group_id, start, end)
        started_s = _epoch_s(dialect, jobs.c.started_at)
        created_s = _epoch_s(dialect, jobs.c.created_at)
        finished_s = _epoch_s(dialect, jobs.c.finished_at)
        ended_s = sa.func.coalesce(
            finished_s, sa.literal(now.timestamp()) if now is not None else started_s
        )
        run_s = ended_s - started_s
        delay_s = started_s - created_s
        # effective_deadline: the deadline, else submit + max_delay_s + expected duration.
        late = sa.or_(
            sa.and_(jobs.c.deadline.is_not(None), jobs.c.finished_at > jobs.c.deadline),
            sa.and_(
                jobs.c.deadline.is_(None),
                finished_s > created_s + jobs.c.max_delay_s + jobs.c.expected_duration_s,
            ),
        )
        day = _floor_div(dialect, started_s, 86400)
        split_col = _split_column(split)
        keys = [jobs.c.tenant, ran_in, day] + ([split_col] if split_col is not None else [])
        query = (
            sa.select(
                *keys,
                sa.func.count(),
                sa.func.sum(delay_s),
                sa.func.sum(jobs.c.gpus * run_s),
                sa.func.sum(jobs.c.cpus * run_s),
                _count(sa.and_(jobs.c.finished_at.is_not(None), late)),
                _count(delay_s > step_s),
                _count(ran_in != jobs.c.home_region),
            )
            .where(*conditions)
            .group_by(*keys)
        )
        with _snapshot(self._engine) as conn:
            view = rollup_view(conn, start, end, step_s) if self.use_rollup else None
            if view is not None:
                query = query.where(view.raw_condition())
            rows = list(conn.execute(query).all())
            if view is not None:
                rows += rolled_counts(conn, view, tenant, region, group_id, split)
            unit_rows = list(conn.execute(unit_sums_query(keys, conditions)).all())
            moves = moved_counts(conn, conditions, split_col)

        def key_of(row: Any) -> tuple[Any, ...]:
            return (row[0], row[1], _from_epoch(row[2], 86400), row[3] if split else None)

        sums: dict[tuple[Any, ...], list[float]] = {}
        for row in rows:
            key = key_of(row)
            figures = [float(v or 0) for v in row[-7:]]
            known = sums.get(key)
            if known is None:
                sums[key] = figures
            else:
                for i, v in enumerate(figures):
                    known[i] += v
        counts = [
            JobCount(
                tenant=t,
                region=r,
                day=day,
                jobs=int(n),
                split_key=key,
                delay_s=delay,
                gpu_s=gpu,
                cpu_s=cpu,
                deadline_misses=int(misses),
                moved_in_time=int(moved_t),
                moved_in_space=int(moved_s),
            )
            for (t, r, day, key), (n, delay, gpu, cpu, misses, moved_t, moved_s) in sums.items()
        ]
        return attach_units(counts, unit_rows, key_of) + moves

    def savings_energy_buckets(
        self,
        *,
        tenant: str | None = None,
        region: str | None = None,
        group_id: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        split: str | None = None,
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
        drawn_query = (
            sa.select(
                jobs.c.tenant.label("tenant"),
                ran_in.label("region"),
                jobs.c.home_region.label("home"),
                (_split_column(split) if split is not None else sa.null()).label("split"),
                hour.label("hour"),
                base.label("base"),
                energy_reports.c.energy_j.label("energy_j"),
                estimated.label("estimated_j"),
            )
            .select_from(energy_reports.join(jobs, energy_reports.c.job_id == jobs.c.id))
            .where(*conditions, not_moved())
        )
        keys: tuple[Any, ...]
        with _snapshot(self._engine) as conn:
            view = rollup_view(conn, start, end, None) if self.use_rollup else None
            if view is not None:
                drawn = drawn_query.where(view.raw_condition()).subquery()
            else:
                drawn = drawn_query.subquery()
            keys = (drawn.c.tenant, drawn.c.region, drawn.c.home)
            if split is not None:
                keys = (*keys, drawn.c.split)
            sums = (sa.func.sum(drawn.c.energy_j), sa.func.sum(drawn.c.estimated_j))
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
                    (*row[: len(keys)], row[-4] if row[-1] else row[-5], row[-3], row[-2], row[-1])
                    for row in conn.execute(query).all()
                ]
            else:
                rows = [
                    (*row, baseline)
                    for column, baseline in ((drawn.c.hour, False), (drawn.c.base, True))
                    for row in conn.execute(
                        sa.select(*keys, column, *sums).group_by(*keys, column)
                    ).all()
                ]
            if view is not None:
                rows += rolled_energy(conn, view, tenant, region, group_id, split)
            moved = moved_buckets(conn, conditions, _split_column(split))
        merged: dict[tuple[Any, ...], list[float]] = {}
        for row in rows:
            key = (
                row[0],
                row[1],
                row[2],
                row[3] if split is not None else None,
                _from_epoch(row[-4], 3600),
                bool(row[-1]),
            )
            known = merged.get(key)
            if known is None:
                merged[key] = [float(row[-3]), float(row[-2] or 0.0)]
            else:
                known[0] += float(row[-3])
                known[1] += float(row[-2] or 0.0)
        return [
            EnergyBucket(
                tenant=t,
                region=r,
                home_region=home,
                split_key=key,
                hour=hour,
                energy_j=energy_j,
                estimated_j=estimated_j,
                baseline=baseline,
            )
            for (t, r, home, key, hour, baseline), (energy_j, estimated_j) in merged.items()
        ] + moved

    def savings_shared_runs(
        self,
        *,
        tenant: str | None = None,
        region: str | None = None,
        group_id: str | None = None,
    ) -> list[RunBounds]:
        """The counted jobs holding a share of one GPU that drew energy, with their run bounds
        (the packing credit; the caller bounds them by the report's range, as the per-job
        report bounds its rows by their run's start)."""
        _, conditions = self._counted(tenant, region, group_id, None, None)
        with _snapshot(self._engine) as conn:
            return shared_run_bounds(conn, conditions)
