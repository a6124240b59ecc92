"""The cycles' side of the SQL store: the planner's read, the bulk plan write-back, quarantine
and the dispatch record.

* ``planning_jobs`` reads only the columns planning needs (no entrypoint, runtime_env, name or
  message: the big text ones), of all plannable jobs; ``planning_changes`` lists the rows
  changed since a time (id and stamp only) and reads those the caller's table lacks, so the
  cycle keeps its job table between cycles and reads again only the rows that really changed.
* ``save_plans`` writes every changed plan in one transaction, in bulk statements. From
  ``_COPY_FROM`` plans on PostgreSQL, the plans are COPYed into a temporary table, one
  statement locks the plannable rows among them and updates them, and the events are COPYed
  (``scheduler.store.copy_text``: rows formatted as text, not value by value), in chunks
  applied by a writer thread while the next is formatted (``_save_planned_pg``). Otherwise, in
  chunks of ``_CHUNK`` ids, the plannable rows are locked (PostgreSQL ``FOR UPDATE``; SQLite
  holds the write lock from ``BEGIN IMMEDIATE``), updated with one executemany and their events
  inserted with another.
* ``started_runs`` reads every started job as a few short columns with its dispatch
  bookkeeping: reconcile's read each pass (the full rows only of the runs it asks about).
* ``take_submit`` / ``record_dispatch`` make the dispatch of an attempt exactly-once across
  replicas: the first is a lease on submitting the attempt (compare-and-swap on
  ``submit_attempt``, expiring after ``lease_s``), the second sets ``dispatched_attempt`` once
  and appends the ``dispatch`` event in the same transaction.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection, RowMapping

from scheduler.domain import PLANNABLE_STATES, Job, JobEvent, JobKind, JobState, Plan
from scheduler.domain.runs import DispatchMark, StartedRun
from scheduler.ports import Holding, PlanningChanges
from scheduler.store.copy_text import copy_lines, escape, text_lines, text_value
from scheduler.store.engine import SqlAdapter, read_transaction, write_transaction
from scheduler.store.rows import (
    EVENT_COLUMNS,
    STATE_BY_VALUE,
    event_row,
    event_values,
    gpu_count,
    job_from_row,
    plan_json,
    plan_values,
)
from scheduler.store.tables import job_events, jobs
from scheduler.store.types import UtcDateTime

_CHUNK = 5_000
# From this many plans, PostgreSQL COPYs them and updates the rows with one statement, and COPYs
# their events; below, the executemany path (fewer moving parts for a handful of rows).
_COPY_FROM = 200
_PIPELINE_ROWS = 20_000
_WRITES = "greenlight_plan_writes"
_PLANNABLE = sorted(s.value for s in PLANNABLE_STATES)
_COPY_EVENTS = f"COPY job_events ({', '.join(EVENT_COLUMNS)}) FROM STDIN"
_HEALTHY_PLANNABLE = sa.and_(jobs.c.state.in_(_PLANNABLE), jobs.c.quarantine.is_(None))
# What the planner needs: the omitted text columns read as empty, and the columns of a run,
# a submission, an endpoint or a move (which a job waiting to be planned has none of, or the
# plan cycle does not read) as unset. Half the columns: a restart reads 100,000 rows.
_NOT_PLANNING: dict[str, Any] = {
    "entrypoint": "",
    "runtime_env": {},
    "name": "",
    "message": None,
    **dict.fromkeys(
        (
            "plan_start",
            "plan_end",
            "submission_id",
            "started_at",
            "finished_at",
            "exit_code",
            "quarantine",
            "submit_attempt",
            "submit_taken_at",
            "dispatched_attempt",
            "dispatched_at",
            "endpoint",
            "endpoint_updated_at",
            "next_endpoint",
            "relocation",
            "moved_at",
            "relocations",
            "move_attempts",
            "functional_units",
            "functional_unit",
            "functional_units_attempt",
        )
    ),
}
_PLANNING_COLUMNS = [c for c in jobs.c if c.name not in _NOT_PLANNING]
_PLANNING_NAMES = [c.name for c in _PLANNING_COLUMNS]

_COUNT_PLANNABLE = sa.select(sa.func.count()).select_from(jobs).where(_HEALTHY_PLANNABLE)


def _changed_since(since: datetime) -> sa.Select[Any]:
    return sa.select(
        jobs.c.id, jobs.c.updated_at, jobs.c.state, _HEALTHY_PLANNABLE.label("ok")
    ).where(jobs.c.updated_at >= since)


class SqlPlanStore(SqlAdapter):
    """PlanStore over SQLAlchemy Core (SQLite or PostgreSQL)."""

    def planning_jobs(self, job_ids: Sequence[str] | None = None) -> list[Job]:
        """Every plannable job not in quarantine (of ``job_ids`` when given), with the
        columns ``_NOT_PLANNING`` names left empty or unset."""
        query = sa.select(*_PLANNING_COLUMNS).where(_HEALTHY_PLANNABLE)
        with read_transaction(self._engine) as conn:
            if job_ids is None:
                rows = conn.execute(query).all()
            else:
                rows = []
                for chunk in _chunks(list(job_ids)):
                    rows.extend(conn.execute(query.where(jobs.c.id.in_(chunk))))
        return [_planning_job(row) for row in rows]

    def planning_changes(
        self, since: datetime, current: Callable[[str, datetime, JobState], bool]
    ) -> PlanningChanges:
        """The rows stamped at or after ``since`` that are no longer plannable (or are in
        quarantine), the planning columns of those still plannable that ``current(id,
        updated_at, state)`` does not accept as already known, and the count of plannable
        jobs: read from one snapshot (PostgreSQL ``REPEATABLE READ``; a SQLite read transaction
        is one), so the count agrees with the rows whatever commits meanwhile. Read as three
        transactions, an arrival between them made the count disagree and the cycle re-read
        the whole queue, every cycle of a burst of submits."""
        with self._engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                gone: list[str] = []
                stale: list[str] = []
                for row in conn.execute(_changed_since(since)):
                    if not row.ok:
                        gone.append(row.id)
                    elif not current(row.id, row.updated_at, JobState(row.state)):
                        stale.append(row.id)
                query = sa.select(*_PLANNING_COLUMNS).where(_HEALTHY_PLANNABLE)
                rows: list[sa.Row[Any]] = []
                for chunk in _chunks(stale):
                    rows.extend(conn.execute(query.where(jobs.c.id.in_(chunk))))
                count = int(conn.execute(_COUNT_PLANNABLE).scalar_one())
        return PlanningChanges(gone=gone, jobs=[_planning_job(row) for row in rows], count=count)

    def holdings(self, states: Collection[JobState]) -> list[Holding]:
        """What every job in ``states`` holds (region, GPUs, start, kind, expected duration)."""
        query = sa.select(
            jobs.c.region, jobs.c.gpus, jobs.c.started_at, jobs.c.kind, jobs.c.expected_duration_s
        ).where(jobs.c.state.in_(sorted(s.value for s in states)))
        with read_transaction(self._engine) as conn:
            rows = conn.execute(query).all()
        return [
            Holding(
                region=region,
                gpus=gpu_count(gpus),
                started_at=started_at,
                kind=JobKind(kind),
                expected_duration_s=duration_s,
            )
            for region, gpus, started_at, kind, duration_s in rows
        ]

    def quarantined_ids(self, job_ids: Sequence[str]) -> set[str]:
        """Which of ``job_ids`` are in quarantine."""
        found: set[str] = set()
        with read_transaction(self._engine) as conn:
            for chunk in _chunks(list(job_ids)):
                found.update(
                    conn.execute(
                        sa.select(jobs.c.id).where(
                            jobs.c.id.in_(chunk), jobs.c.quarantine.is_not(None)
                        )
                    ).scalars()
                )
        return found

    def save_plans(self, plans: Sequence[tuple[str, Plan, Sequence[JobEvent]]]) -> set[str]:
        """Store each ``(job_id, plan, events)`` whose job is still plannable and not in
        quarantine: the job becomes planned, ``updated_at`` the first event's time, and the
        events are appended (the first, the state change, with the real from-state). One
        transaction; returns the ids saved."""
        saved: set[str] = set()
        if not plans:
            return saved
        by_id = {job_id: (plan, events) for job_id, plan, events in plans}
        with write_transaction(self._engine) as conn:
            if conn.dialect.name == "postgresql" and len(by_id) >= _COPY_FROM:
                return _save_planned_pg(conn, by_id)
            for chunk in _chunks(list(by_id)):  # chunks bound the IN lists
                current = _lock_plannable(conn, chunk)
                if not current:
                    continue
                if conn.dialect.name == "sqlite":
                    _write_planned_sqlite(conn, current, by_id)
                else:
                    _write_planned(conn, current, by_id)
                saved.update(current)
        return saved

    def quarantine_job(self, job_id: str, reason: str, event: JobEvent) -> bool:
        """Set the job aside: no cycle plans, dispatches or reconciles it again until an admin
        clears it. Appends ``event``; ``updated_at`` becomes its time. False if the job is
        missing or already in quarantine."""
        update = (
            sa.update(jobs)
            .where(jobs.c.id == job_id, jobs.c.quarantine.is_(None))
            .values(quarantine=reason[:2000], updated_at=event.at)
        )
        with write_transaction(self._engine) as conn:
            if conn.execute(update).rowcount != 1:
                return False
            conn.execute(sa.insert(job_events).values(event_values(event)))
        return True

    def dispatch_marks(self, job_ids: Sequence[str]) -> dict[str, DispatchMark]:
        """The dispatch bookkeeping of each job found among ``job_ids``."""
        out: dict[str, DispatchMark] = {}
        with read_transaction(self._engine) as conn:
            for chunk in _chunks(list(job_ids)):
                query = sa.select(jobs.c.id, *_MARK_COLUMNS).where(jobs.c.id.in_(chunk))
                for row in conn.execute(query):
                    out[row.id] = _mark(row)
        return out

    def started_runs(self, states: Collection[JobState]) -> list[StartedRun]:
        """Every job in ``states`` as reconcile first reads it (``StartedRun``): a few short
        columns, not the rows (entrypoint, runtime env, plan), in one query."""
        query = sa.select(
            jobs.c.id,
            jobs.c.state,
            jobs.c.region,
            jobs.c.submission_id,
            jobs.c.serve,
            jobs.c.gpus,
            *_MARK_COLUMNS,
        ).where(jobs.c.state.in_(sorted(s.value for s in states)))
        with read_transaction(self._engine) as conn:
            rows = conn.execute(query).all()
        return [
            StartedRun(
                job_id=row.id,
                state=STATE_BY_VALUE[row.state],
                region=row.region,
                submission_id=row.submission_id,
                serve=row.serve is not None,  # JSON null reads as None too
                gpus=gpu_count(row.gpus),
                mark=_mark(row),
            )
            for row in rows
        ]

    def take_submit(self, job_id: str, attempt: int, now: datetime, lease_s: float) -> bool:
        """Take the submit of ``attempt`` (the job must be dispatched at that attempt, its
        dispatch not yet recorded, and nobody holding a lease on it younger than ``lease_s``
        seconds). Exactly one caller wins; True for it."""
        expired = now - timedelta(seconds=lease_s)
        update = (
            sa.update(jobs)
            .where(
                jobs.c.id == job_id,
                jobs.c.attempt == attempt,
                jobs.c.state == JobState.DISPATCHED.value,
                jobs.c.quarantine.is_(None),
                sa.or_(jobs.c.dispatched_attempt.is_(None), jobs.c.dispatched_attempt < attempt),
                sa.or_(
                    jobs.c.submit_attempt.is_(None),
                    jobs.c.submit_attempt < attempt,
                    jobs.c.submit_taken_at < expired,
                ),
            )
            .values(submit_attempt=attempt, submit_taken_at=now)
        )
        with write_transaction(self._engine) as conn:
            return bool(conn.execute(update).rowcount == 1)

    def record_dispatch(self, job_id: str, attempt: int, event: JobEvent) -> bool:
        """Record that ``attempt`` was handed to the cluster, once: sets ``dispatched_attempt``
        and ``dispatched_at`` (the event's time) and appends ``event``, only if no dispatch of
        that attempt was recorded before. True for the one caller that recorded it."""
        update = (
            sa.update(jobs)
            .where(
                jobs.c.id == job_id,
                jobs.c.attempt == attempt,
                sa.or_(jobs.c.dispatched_attempt.is_(None), jobs.c.dispatched_attempt < attempt),
            )
            .values(dispatched_attempt=attempt, dispatched_at=event.at)
        )
        with write_transaction(self._engine) as conn:
            if conn.execute(update).rowcount != 1:
                return False
            conn.execute(sa.insert(job_events).values(event_values(event)))
        return True

    def release_claim(self, job_id: str, attempt: int, event: JobEvent) -> bool:
        """Undo the claim of an attempt that never reached the cluster (it was unreachable):
        the job goes back to retrying with ``attempt - 1``, so the retry is not counted and the
        next claim reuses the same submission id (idempotent should the submit have landed).
        Only while the job is dispatched at ``attempt`` with no dispatch recorded."""
        update = (
            sa.update(jobs)
            .where(
                jobs.c.id == job_id,
                jobs.c.attempt == attempt,
                jobs.c.state == JobState.DISPATCHED.value,
                sa.or_(jobs.c.dispatched_attempt.is_(None), jobs.c.dispatched_attempt < attempt),
            )
            .values(
                state=JobState.RETRYING.value,
                attempt=attempt - 1,
                submit_attempt=None,
                submit_taken_at=None,
                region=None,
                submission_id=None,
                updated_at=event.at,
            )
        )
        stored = dataclasses.replace(
            event, from_state=JobState.DISPATCHED, to_state=JobState.RETRYING
        )
        with write_transaction(self._engine) as conn:
            if conn.execute(update).rowcount != 1:
                return False
            conn.execute(sa.insert(job_events).values(event_values(stored)))
        return True


_BULK_PLAN_UPDATE = (
    sa.update(jobs)
    .where(jobs.c.id == sa.bindparam("b_id"))
    .values(
        {
            name: sa.bindparam(name)
            for name in ("plan_region", "plan_start", "plan_end", "plan", "state", "updated_at")
        }
    )
)


_MARK_COLUMNS = (
    jobs.c.attempt,
    jobs.c.submit_attempt,
    jobs.c.submit_taken_at,
    jobs.c.dispatched_attempt,
    jobs.c.dispatched_at,
    jobs.c.quarantine,
)


def _mark(row: Any) -> DispatchMark:
    """The dispatch bookkeeping of a row that has the ``_MARK_COLUMNS``."""
    return DispatchMark(
        attempt=row.attempt,
        submit_attempt=row.submit_attempt,
        submit_taken_at=row.submit_taken_at,
        dispatched_attempt=row.dispatched_attempt,
        dispatched_at=row.dispatched_at,
        quarantine=row.quarantine,
    )


def _lock_plannable(conn: Connection, chunk: list[str]) -> dict[str, JobState]:
    """Lock the chunk's plannable rows not in quarantine (SQLite: the write lock is held
    already); their states."""
    lock = (
        sa.select(jobs.c.id, jobs.c.state)
        .where(jobs.c.id.in_(chunk), jobs.c.state.in_(_PLANNABLE), jobs.c.quarantine.is_(None))
        .with_for_update()
    )
    return {row.id: STATE_BY_VALUE[row.state] for row in conn.execute(lock)}


def _write_planned(
    conn: Connection,
    current: dict[str, JobState],
    by_id: dict[str, tuple[Plan, Sequence[JobEvent]]],
) -> None:
    """The locked rows' plans with one executemany, their events with another."""
    conn.execute(
        _BULK_PLAN_UPDATE,
        [
            {
                "b_id": job_id,
                **plan_values(by_id[job_id][0]),
                "state": JobState.PLANNED.value,
                "updated_at": by_id[job_id][1][0].at,
            }
            for job_id in current
        ],
    )
    conn.execute(
        sa.insert(job_events),
        [dict(zip(EVENT_COLUMNS, row, strict=True)) for row in _planned_events(current, by_id)],
    )


_SQLITE_PLAN_UPDATE = (
    "UPDATE jobs SET plan_region = ?, plan_start = ?, plan_end = ?, plan = ?, state = ?, "
    "updated_at = ? WHERE id = ?"
)
_SQLITE_EVENT_INSERT = (
    f"INSERT INTO job_events ({', '.join(EVENT_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(EVENT_COLUMNS))})"
)
_EVENT_AT = EVENT_COLUMNS.index("at")


def _write_planned_sqlite(
    conn: Connection,
    current: dict[str, JobState],
    by_id: dict[str, tuple[Plan, Sequence[JobEvent]]],
) -> None:
    """SQLite: as ``_write_planned``, through the driver's own executemany with the values
    already as SQLAlchemy would bind them: timestamps through the column type's own bind
    processor, once per instant (a cycle's plans share a few hundred), the plan document as its
    JSON text. SQLAlchemy's per-row parameter processing was a third of writing 100,000 plans
    on SQLite."""
    stamp = _stamper(conn)
    planned = JobState.PLANNED.value
    rows = []
    for job_id in current:
        plan, events = by_id[job_id]
        rows.append(
            (
                plan.region,
                stamp(plan.start),
                stamp(plan.end),
                plan_json(plan),
                planned,
                stamp(events[0].at),
                job_id,
            )
        )
    conn.exec_driver_sql(_SQLITE_PLAN_UPDATE, rows)
    event_rows = []
    for row in _planned_events(current, by_id):
        values = list(row)
        values[_EVENT_AT] = stamp(values[_EVENT_AT])
        event_rows.append(tuple(values))
    conn.exec_driver_sql(_SQLITE_EVENT_INSERT, event_rows)


def _stamper(conn: Connection) -> Callable[[datetime], Any]:
    """``UtcDateTime``'s bind processing for ``conn``'s dialect, remembered by instant."""
    process = UtcDateTime().dialect_impl(conn.dialect).bind_processor(conn.dialect)
    seen: dict[datetime, Any] = {}

    def stamp(value: datetime) -> Any:
        bound = seen.get(value)
        if bound is None:
            bound = seen[value] = process(value) if process is not None else value
        return bound

    return stamp


# PostgreSQL: the new plans are COPYed into a temporary table (array parameters would be
# escaped value by value in Python, ~30 us a plan), then one statement locks the
# plannable rows among them in a CTE that keeps each row's state before and updates them by
# primary key: no per-row statement. (A join of two CTEs made a nested loop over both.)
_PG_PLAN_TABLE = f"""
    CREATE TEMPORARY TABLE {_WRITES} (
        id text, plan_region text, plan_start timestamptz, plan_end timestamptz, plan json,
        updated_at timestamptz
    ) ON COMMIT DROP
"""
_PG_PLAN_UPDATE = f"""
    WITH locked AS (
        SELECT jobs.state AS before, w.* FROM {_WRITES} AS w JOIN jobs ON jobs.id = w.id
        WHERE jobs.state IN ({", ".join(f"'{s}'" for s in _PLANNABLE)})
          AND jobs.quarantine IS NULL
        FOR UPDATE OF jobs
    )
    UPDATE jobs SET
        plan_region = locked.plan_region, plan_start = locked.plan_start,
        plan_end = locked.plan_end, plan = locked.plan,
        state = '{JobState.PLANNED.value}', updated_at = locked.updated_at
    FROM locked
    WHERE jobs.id = locked.id
    RETURNING jobs.id, locked.before
"""


def _save_planned_pg(
    conn: Connection, by_id: dict[str, tuple[Plan, Sequence[JobEvent]]]
) -> set[str]:
    """PostgreSQL: lock and update the plannable rows among ``by_id`` and COPY their events,
    a chunk of ``_PIPELINE_ROWS`` at a time; the ids saved.

    The statements run in order on one writer thread, which alone uses ``conn`` until the last
    is done, while this thread formats the next chunk's rows and the last chunk's events: the
    database's UPDATE (eight indexes to maintain: ~2.4 s for 100,000 plans on the 2-core
    machine) and Python's formatting (~1.5 s) overlap instead of adding up."""
    conn.exec_driver_sql(_PG_PLAN_TABLE)
    saved: set[str] = set()
    futures: list[Future[Any]] = []
    with ThreadPoolExecutor(1, thread_name_prefix="greenlight-plan-write") as writer:
        try:
            pending: Future[dict[str, JobState]] | None = None
            for chunk in [*_chunks(list(by_id), _PIPELINE_ROWS), None]:
                update = None
                if chunk is not None:
                    lines = [_plan_line(job_id, *by_id[job_id]) for job_id in chunk]
                    update = writer.submit(_update_planned_pg, conn, lines)
                    futures.append(update)
                if pending is not None:  # the writer has the next chunk to apply meanwhile
                    current = pending.result()
                    saved.update(current)
                    events = list(text_lines(_planned_events(current, by_id)))
                    futures.append(writer.submit(copy_lines, conn, _COPY_EVENTS, events))
                pending = update
            futures.append(writer.submit(conn.exec_driver_sql, f"DROP TABLE {_WRITES}"))
            for future in futures:
                future.result()
        except BaseException:
            for future in futures:  # the transaction is lost: send nothing more
                future.cancel()
            raise
    return saved


def _update_planned_pg(conn: Connection, lines: list[str]) -> dict[str, JobState]:
    """PostgreSQL: lock and update the plannable rows among the plans of ``lines`` (the
    temporary table's rows, above); their states before."""
    conn.exec_driver_sql(f"TRUNCATE {_WRITES}")
    copy_lines(conn, f"COPY {_WRITES} FROM STDIN", lines)
    updated = conn.exec_driver_sql(_PG_PLAN_UPDATE).all()
    return {row[0]: STATE_BY_VALUE[row[1]] for row in updated}


def _plan_line(job_id: str, plan: Plan, events: Sequence[JobEvent]) -> str:
    """The temporary table's row for ``plan`` in text COPY form, built in one go."""
    return "\t".join(
        (
            escape(job_id),
            escape(plan.region),
            text_value(plan.start),
            text_value(plan.end),
            escape(plan_json(plan)),
            text_value(events[0].at),
        )
    )


def _planned_events(
    current: dict[str, JobState], by_id: dict[str, tuple[Plan, Sequence[JobEvent]]]
) -> Iterator[tuple[Any, ...]]:
    """The events of the saved plans as ``EVENT_COLUMNS`` rows: the first, the state change,
    from the state the row really had."""
    for job_id, state in current.items():
        first, *more = by_id[job_id][1]
        yield event_row(first, from_state=state, to_state=JobState.PLANNED)
        for event in more:
            yield event_row(event)


def _planning_job(row: Sequence[Any]) -> Job:
    """The job of a row of ``_PLANNING_COLUMNS``, read as a plain tuple and zipped with the
    names: a fifth faster than copying a ``RowMapping`` (100,000 rows at each restart)."""
    values = dict(zip(_PLANNING_NAMES, row, strict=True))
    values.update(_NOT_PLANNING)
    return job_from_row(cast(RowMapping, values))


def _chunks(ids: list[str], size: int = _CHUNK) -> list[list[str]]:
    return [ids[i : i + size] for i in range(0, len(ids), size)]
