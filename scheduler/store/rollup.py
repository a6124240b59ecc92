"""The savings report's hourly rollup: finished jobs' sums per hour they started in.

Why: summing a million jobs and their energy reports takes seconds on every report; the sums
per started hour (thousands of rows) take milliseconds. The report reads the rollup for the
hours it covers and the raw rows for everything else (``RollupView.raw_condition``): jobs
still running, jobs that started outside the rolled hours or in a partial edge hour of the
report's range, and "dirty" hours. So the report equals the raw SQL sums at every instant; the
rollup only decides how much of it is read from precomputed rows.

* Membership: a job is rolled up when it is in a terminal state with a finish time (its run
  time no longer depends on ``now``). Terminal states are final, so a job joins once.
* Dirty hours: every write that can change what a rolled hour holds marks the started hour of
  the job it touched (``mark_jobs_dirty``, in the writer's transaction): a job reaching a
  terminal state, a bulk insert of started jobs, an energy report (late ones included). The
  marker is an upsert that bumps a counter, so it takes the marker row's lock: a refresh
  deletes the marker first (waiting for writers still holding it) and only then recomputes
  the hour in a new statement, which on PostgreSQL's READ COMMITTED sees their rows. A writer
  that commits later marks the hour again.
* Refresh (``refresh_savings_rollup``): recompute dirty hours (idempotent: delete the hour's
  rows, insert its sums) and extend the rolled range to the current hour; serialised by an
  advisory lock on PostgreSQL (SQLite's write transaction already is). ``greenlight db rollup
  --rebuild`` recomputes everything.
* A deployment that ever moved (``moved_at`` set) drew energy in several regions: its energy
  is never rolled up (nor in the raw hourly sums) but summed per copy
  (``scheduler.store.savings_deployments``); its job counts are rolled up like any job's.
* The moved-in-time count depends on the planning step; the rollup records the step it was
  made with, and a report asked with another step reads raw rows only.

Hours are integers: whole hours since the epoch, UTC.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from scheduler.domain import TERMINAL_STATES, JobState, MeterMethod
from scheduler.store.engine import SqlAdapter, write_transaction
from scheduler.store.tables import (
    energy_reports,
    jobs,
    savings_rollup_dirty,
    savings_rollup_energy,
    savings_rollup_jobs,
    savings_rollup_state,
)

HOUR_S = 3600
_TERMINAL = sorted(s.value for s in TERMINAL_STATES)
_UNFINISHED_COUNTED = [JobState.RUNNING.value, JobState.RELOCATING.value]
# More dirty ranges than this and a report reads raw rows only: a long OR is no index scan.
MAX_DIRTY_RANGES = 64
_LOCK_KEY = 0x67_6C_72_6F_6C_6C  # "glroll": serialises refreshes on PostgreSQL


def hour_start(hour: int) -> datetime:
    return datetime.fromtimestamp(hour * HOUR_S, tz=UTC)


def floor_hour(at: datetime) -> int:
    return int(at.timestamp()) // HOUR_S


def ceil_hour(at: datetime) -> int:
    return -(-math.ceil(at.timestamp()) // HOUR_S)


def epoch_s(dialect: str, column: Any) -> Any:
    """POSIX seconds of a UtcDateTime column, in SQL (SQLite stores naive UTC text)."""
    if dialect == "sqlite":
        return sa.cast(sa.func.strftime("%s", column), sa.Integer)
    return sa.extract("epoch", column)


def hour_of(dialect: str, seconds: Any) -> Any:
    """Whole hours since the epoch of a number of seconds, in SQL."""
    if dialect == "sqlite":
        return sa.cast(seconds / HOUR_S, sa.Integer)  # truncation; epochs here are positive
    return sa.cast(sa.func.floor(seconds / HOUR_S), sa.BigInteger)


def ran_in() -> Any:
    return sa.func.coalesce(jobs.c.region, jobs.c.plan_region, jobs.c.home_region)


def members() -> list[sa.ColumnElement[bool]]:
    """The jobs a rolled hour holds: terminal, started and finished."""
    return [
        jobs.c.state.in_(_TERMINAL),
        jobs.c.started_at.is_not(None),
        jobs.c.finished_at.is_not(None),
    ]


def mark_dirty(conn: Connection, hours: Iterable[int]) -> None:
    """Mark started hours as changed, in ``conn``'s transaction (see the module docstring)."""
    rows = [{"started_hour": h, "marks": 1} for h in sorted(set(hours))]
    if not rows:
        return
    table = savings_rollup_dirty
    insert: Any = (
        postgresql.insert(table) if conn.dialect.name == "postgresql" else sqlite.insert(table)
    )
    conn.execute(
        insert.on_conflict_do_update(
            index_elements=[table.c.started_hour], set_={"marks": table.c.marks + 1}
        ),
        rows,
    )


def mark_jobs_dirty(conn: Connection, job_ids: Sequence[str]) -> None:
    """Mark the started hours of those of ``job_ids`` that have started."""
    if not job_ids:
        return
    hour = hour_of(conn.dialect.name, epoch_s(conn.dialect.name, jobs.c.started_at))
    query = (
        sa.select(hour)
        .where(jobs.c.id.in_(list(job_ids)), jobs.c.started_at.is_not(None))
        .distinct()
    )
    mark_dirty(conn, [int(h) for h in conn.execute(query).scalars()])


def mark_started_dirty(conn: Connection, started: Iterable[datetime | None]) -> None:
    """Mark the hours of these start times (None: not started, nothing to mark)."""
    mark_dirty(conn, [floor_hour(s) for s in started if s is not None])


@dataclass(frozen=True, slots=True)
class RollupView:
    """What a report over ``[start, end)`` reads from the rollup: started hours ``[lo, hi)``
    except ``dirty`` (sorted), as of one snapshot."""

    lo: int
    hi: int
    dirty: tuple[int, ...]
    step_s: float

    def ranges(self) -> list[tuple[int, int]]:
        """The dirty hours as consecutive ranges ``[a, b)``."""
        out: list[tuple[int, int]] = []
        for h in self.dirty:
            if out and out[-1][1] == h:
                out[-1] = (out[-1][0], h + 1)
            else:
                out.append((h, h + 1))
        return out

    def raw_condition(self) -> sa.ColumnElement[bool]:
        """Counted jobs the rollup does not answer for: read them raw."""
        started = jobs.c.started_at
        parts: list[sa.ColumnElement[bool]] = [
            jobs.c.state.in_(_UNFINISHED_COUNTED),
            jobs.c.finished_at.is_(None),
            started < hour_start(self.lo),
            started >= hour_start(self.hi),
        ]
        parts += [
            sa.and_(started >= hour_start(a), started < hour_start(b)) for a, b in self.ranges()
        ]
        return sa.or_(*parts)

    def rollup_condition(self, table: sa.Table) -> list[sa.ColumnElement[bool]]:
        c = table.c
        out = [c.started_hour >= self.lo, c.started_hour < self.hi]
        out += [sa.not_(sa.and_(c.started_hour >= a, c.started_hour < b)) for a, b in self.ranges()]
        return out


def rollup_view(
    conn: Connection, start: datetime | None, end: datetime | None, step_s: float | None
) -> RollupView | None:
    """The rolled hours a report over ``[start, end)`` can use, or None (read raw only): no
    rollup yet, none inside the range, too many dirty hours, or (``step_s`` given) a rollup
    made with another planning step."""
    state = conn.execute(sa.select(savings_rollup_state)).first()
    if state is None or (step_s is not None and state.step_s != step_s):
        return None
    lo = state.rolled_from if start is None else max(state.rolled_from, ceil_hour(start))
    hi = state.rolled_to if end is None else min(state.rolled_to, floor_hour(end))
    if lo >= hi:
        return None
    d = savings_rollup_dirty.c
    dirty = tuple(
        int(h)
        for h in conn.execute(
            sa.select(d.started_hour)
            .where(d.started_hour >= lo, d.started_hour < hi)
            .order_by(d.started_hour)
        ).scalars()
    )
    view = RollupView(lo=lo, hi=hi, dirty=dirty, step_s=state.step_s)
    return None if len(view.ranges()) > MAX_DIRTY_RANGES else view


def _recompute(conn: Connection, a: int, b: int, step_s: float) -> None:
    """Replace the rolled sums of started hours ``[a, b)`` by fresh ones from the raw rows."""
    dialect = conn.dialect.name
    for table in (savings_rollup_jobs, savings_rollup_energy):
        conn.execute(sa.delete(table).where(table.c.started_hour >= a, table.c.started_hour < b))
    started_s = epoch_s(dialect, jobs.c.started_at)
    created_s = epoch_s(dialect, jobs.c.created_at)
    finished_s = epoch_s(dialect, jobs.c.finished_at)
    started_hour = hour_of(dialect, started_s)
    where = [
        *members(),
        jobs.c.started_at >= hour_start(a),
        jobs.c.started_at < hour_start(b),
    ]
    group_key = sa.func.coalesce(jobs.c.group_id, "")
    keys = [started_hour, jobs.c.tenant, ran_in(), jobs.c.kind, group_key]
    run_s = finished_s - started_s
    delay_s = started_s - created_s
    late = sa.or_(
        sa.and_(jobs.c.deadline.is_not(None), jobs.c.finished_at > jobs.c.deadline),
        sa.and_(
            jobs.c.deadline.is_(None),
            finished_s > created_s + jobs.c.max_delay_s + jobs.c.expected_duration_s,
        ),
    )

    def count(condition: Any) -> Any:
        return sa.func.sum(sa.case((condition, 1), else_=0))

    counts = (
        sa.select(
            *keys,
            sa.func.count(),
            sa.func.sum(delay_s),
            sa.func.sum(jobs.c.gpus * run_s),
            sa.func.sum(jobs.c.cpus * run_s),
            count(late),
            count(delay_s > step_s),
            count(ran_in() != jobs.c.home_region),
        )
        .where(*where)
        .group_by(*keys)
    )
    j = savings_rollup_jobs.c
    conn.execute(
        sa.insert(savings_rollup_jobs).from_select(
            [
                j.started_hour,
                j.tenant,
                j.region,
                j.kind,
                j.group_key,
                j.jobs,
                j.delay_s,
                j.gpu_s,
                j.cpu_s,
                j.deadline_misses,
                j.moved_in_time,
                j.moved_in_space,
            ],
            counts,
        )
    )
    at_s = epoch_s(dialect, energy_reports.c.interval_start)
    estimated = sa.case(
        (energy_reports.c.method == MeterMethod.ESTIMATE.value, energy_reports.c.energy_j),
        else_=0.0,
    )
    e = savings_rollup_energy.c
    columns = [
        e.started_hour,
        e.tenant,
        e.region,
        e.home_region,
        e.kind,
        e.group_key,
        e.hour,
        e.baseline,
        e.energy_j,
        e.estimated_j,
    ]
    for baseline, hour in (
        (False, hour_of(dialect, at_s)),
        (True, hour_of(dialect, at_s - delay_s)),
    ):
        ekeys = [*keys[:3], jobs.c.home_region, *keys[3:], hour]
        energy = (
            sa.select(
                *ekeys,
                sa.literal(baseline),
                sa.func.sum(energy_reports.c.energy_j),
                sa.func.sum(estimated),
            )
            .select_from(energy_reports.join(jobs, energy_reports.c.job_id == jobs.c.id))
            # A moved deployment's energy is summed per copy (scheduler.store.savings_deployments).
            .where(*where, jobs.c.moved_at.is_(None))
            .group_by(*ekeys)
        )
        conn.execute(sa.insert(savings_rollup_energy).from_select(columns, energy))


def _lock(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_LOCK_KEY)))


@dataclass(frozen=True, slots=True)
class RollupRefresh:
    """What a refresh did: dirty hours recomputed, new hours rolled, whether it rebuilt."""

    dirty_hours: int
    new_hours: int
    rebuilt: bool


class SqlRollupStore(SqlAdapter):
    """Maintains the savings rollup (see the module docstring)."""

    def refresh_savings_rollup(
        self, now: datetime, step_s: float, *, max_dirty: int = 168
    ) -> RollupRefresh:
        """Recompute up to ``max_dirty`` dirty hours and roll every hour before ``now``'s
        (one transaction). Builds the rollup from scratch when there is none or it was made
        with another ``step_s``."""
        with write_transaction(self._engine) as conn:
            _lock(conn)
            state = conn.execute(sa.select(savings_rollup_state)).first()
            if state is None or state.step_s != step_s:
                return self._rebuild(conn, now, step_s)
            d = savings_rollup_dirty.c
            dirty = [
                int(h)
                for h in conn.execute(
                    sa.select(d.started_hour).order_by(d.started_hour).limit(max_dirty)
                ).scalars()
            ]
            if dirty:
                # First take the markers (waiting for writers that hold them), then read.
                conn.execute(sa.delete(savings_rollup_dirty).where(d.started_hour.in_(dirty)))
                for h in dirty:
                    if state.rolled_from <= h < state.rolled_to:
                        _recompute(conn, h, h + 1, step_s)
            new_to = floor_hour(now)
            if new_to > state.rolled_to:
                _recompute(conn, state.rolled_to, new_to, step_s)
                conn.execute(sa.update(savings_rollup_state).values(rolled_to=new_to))
            return RollupRefresh(
                dirty_hours=len(dirty),
                new_hours=max(0, new_to - state.rolled_to),
                rebuilt=False,
            )

    def rebuild_savings_rollup(self, now: datetime, step_s: float) -> RollupRefresh:
        """Recompute the whole rollup from the raw rows (``greenlight db rollup --rebuild``)."""
        with write_transaction(self._engine) as conn:
            _lock(conn)
            return self._rebuild(conn, now, step_s)

    def _rebuild(self, conn: Connection, now: datetime, step_s: float) -> RollupRefresh:
        conn.execute(sa.delete(savings_rollup_dirty))
        for table in (savings_rollup_jobs, savings_rollup_energy, savings_rollup_state):
            conn.execute(sa.delete(table))
        first = conn.execute(sa.select(sa.func.min(jobs.c.started_at)).where(*members()))
        first_at = first.scalar_one_or_none()
        to = floor_hour(now)
        lo = min(to, floor_hour(first_at)) if first_at is not None else to
        if lo < to:
            _recompute(conn, lo, to, step_s)
        conn.execute(
            sa.insert(savings_rollup_state).values(
                id=1, rolled_from=lo, rolled_to=to, step_s=step_s
            )
        )
        return RollupRefresh(dirty_hours=0, new_hours=to - lo, rebuilt=True)
