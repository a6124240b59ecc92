"""The SQL JobStore: jobs, their plans and their history.

Every state change is a conditional UPDATE on the state read just before (compare-and-swap),
so two callers racing on one job cannot both win; the loser re-reads and is refused if the edge
is no longer allowed. ``claim_due`` selects due rows ``FOR UPDATE SKIP LOCKED`` on PostgreSQL
(replicas take disjoint batches without waiting on each other) and then updates only those
still planned; on SQLite the whole transaction holds the write lock (``BEGIN IMMEDIATE``), so
replicas on one file take turns.
"""

from __future__ import annotations

import dataclasses
import functools
import operator
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from scheduler.domain import (
    PLANNABLE_STATES,
    TERMINAL_STATES,
    GreenlightError,
    InvalidTransition,
    Job,
    JobEvent,
    JobKind,
    JobNotFound,
    JobState,
    Plan,
    can_transition,
)
from scheduler.domain.submission import PendingJob
from scheduler.store.copy_text import copy_text
from scheduler.store.engine import SqlAdapter, read_transaction, write_transaction
from scheduler.store.rollup import mark_jobs_dirty, mark_started_dirty
from scheduler.store.rows import (
    event_from_row,
    event_values,
    job_from_row,
    job_values,
    pending_job_values,
    plan_values,
)
from scheduler.store.tables import job_events, jobs

# A conditional update loses only when another writer changed the row in between; each retry
# re-reads the state, and the finite state graph bounds how often that can happen.
_CAS_ATTEMPTS = 8
_IDS_CHUNK = 5_000  # bounds an IN list
_INSERT_JOB = sa.insert(jobs)
# From this many rows a PostgreSQL bulk insert streams them with COPY (one round trip, no
# per-row statement), several times faster than executemany.
_COPY_FROM = 200
_INSERT_EVENT = sa.insert(job_events)
# The page's count, as a column of its rows (``list_jobs``).
_TOTAL = "_page_total"


@functools.cache
def _job_with_event_for(job_keys: tuple[str, ...], event_keys: tuple[str, ...]) -> sa.Insert:
    new_job = (
        sa.insert(jobs)
        .values({k: sa.bindparam(f"j_{k}", type_=jobs.c[k].type) for k in job_keys})
        .cte("new_job")
    )
    return (
        sa.insert(job_events)
        .values({k: sa.bindparam(f"e_{k}", type_=job_events.c[k].type) for k in event_keys})
        .add_cte(new_job)
    )


def _job_with_event(row: dict[str, Any], event: dict[str, Any]) -> sa.Insert:
    """``INSERT`` of a job and its first event in one statement (PostgreSQL: a data-modifying
    ``WITH``; the event's foreign key is checked at the statement's end, after both rows)."""
    return _job_with_event_for(tuple(row), tuple(event))


def _prefixed(row: dict[str, Any], event: dict[str, Any]) -> dict[str, Any]:
    return {**{f"j_{k}": v for k, v in row.items()}, **{f"e_{k}": v for k, v in event.items()}}


class SqlJobStore(SqlAdapter):
    """JobStore over SQLAlchemy Core (SQLite or PostgreSQL)."""

    def add_job(self, job: Job, event: JobEvent) -> None:
        """Insert ``job`` and its first event atomically. Raises GreenlightError if the id
        is taken."""
        row, first = job_values(job), event_values(event)
        try:
            if self._engine.dialect.name == "postgresql" and job.started_at is None:
                # The submit path: one statement, which PostgreSQL applies atomically without a
                # transaction around it, so no BEGIN and COMMIT round trips per submit.
                with self._autocommit.connect() as conn:
                    conn.execute(_job_with_event(row, first), _prefixed(row, first))
                return
            with write_transaction(self._engine) as conn:
                # Parameters apart from the statement: its compiled form is cached, where
                # ``.values(...)`` would build and coerce a new statement per job.
                conn.execute(_INSERT_JOB, row)
                conn.execute(_INSERT_EVENT, first)
                mark_started_dirty(conn, [job.started_at])
        except sa.exc.IntegrityError as e:
            raise GreenlightError(f"job {job.id!r} already exists") from e

    @functools.cached_property
    def _autocommit(self) -> sa.Engine:
        """The engine's pool, each statement its own transaction (PostgreSQL)."""
        return self._engine.execution_options(isolation_level="AUTOCOMMIT")

    def add_jobs(self, new: Sequence[tuple[Job, JobEvent]]) -> None:
        """Insert jobs and their first events in one transaction, two bulk statements
        (PostgreSQL ``COPY``, SQLite executemany): all or none. Raises GreenlightError if an
        id is taken."""
        self._insert(
            [job_values(job) for job, _ in new],
            [event_values(event) for _, event in new],
            # Jobs stored already started (imports, tests): their hours' rollup is stale.
            started=[job.started_at for job, _ in new],
        )

    def add_pending(
        self, new: Sequence[PendingJob], *, now: datetime, actor: str, reason: str
    ) -> None:
        """Insert just-submitted jobs, pending since ``now``, each with its first state event
        (``actor``, ``reason``): as ``add_jobs`` of the ``Job``s and events they stand for, in
        one transaction (PostgreSQL ``COPY``), all or none. Raises GreenlightError if an id is
        taken."""
        event = event_values(
            JobEvent(
                job_id="",
                at=now,
                kind="state",
                actor=actor,
                reason=reason,
                to_state=JobState.PENDING,
            )
        )
        self._insert(
            [pending_job_values(p, now) for p in new], [{**event, "job_id": p.id} for p in new]
        )

    def _insert(
        self,
        job_rows: list[dict[str, Any]],
        event_rows: list[dict[str, Any]],
        started: Sequence[datetime | None] = (),
    ) -> None:
        """Jobs' rows and their first events in one transaction, two bulk statements
        (PostgreSQL ``COPY`` from ``_COPY_FROM`` rows, else executemany), the rollup hours of
        ``started`` marked stale. Raises GreenlightError if an id is taken."""
        if not job_rows:
            return
        import psycopg

        try:
            with write_transaction(self._engine) as conn:
                if conn.dialect.name == "postgresql" and len(job_rows) >= _COPY_FROM:
                    copy_rows(conn, jobs, job_rows)
                    copy_rows(conn, job_events, event_rows)
                else:
                    conn.execute(_INSERT_JOB, job_rows)
                    conn.execute(_INSERT_EVENT, event_rows)
                mark_started_dirty(conn, started)
        except (sa.exc.IntegrityError, psycopg.errors.IntegrityError) as e:
            raise GreenlightError(f"one of {len(job_rows)} job ids already exists") from e

    def get_job(self, job_id: str) -> Job:
        """Raises JobNotFound."""
        with read_transaction(self._engine) as conn:
            row = conn.execute(sa.select(jobs).where(jobs.c.id == job_id)).mappings().first()
        if row is None:
            raise JobNotFound(job_id)
        return job_from_row(row)

    def get_jobs(self, job_ids: Sequence[str]) -> dict[str, Job]:
        """The jobs found among ``job_ids``, by id (a missing id is left out)."""
        out: dict[str, Job] = {}
        ids = list(job_ids)
        if not ids:  # a paced reconcile pass with no run due: no round trip
            return out
        with read_transaction(self._engine) as conn:
            for i in range(0, len(ids), _IDS_CHUNK):
                query = sa.select(jobs).where(jobs.c.id.in_(ids[i : i + _IDS_CHUNK]))
                for row in conn.execute(query).mappings():
                    out[row["id"]] = job_from_row(row)
        return out

    def list_jobs(
        self,
        *,
        states: Collection[JobState] | None = None,
        tenant: str | None = None,
        kind: JobKind | None = None,
        limit: int = 100,
        offset: int = 0,
        group_id: str | None = None,
        after: tuple[datetime, str] | None = None,
        count: bool = True,
        count_limit: int | None = None,
    ) -> tuple[list[Job], int | None]:
        """Jobs matching every given filter, newest first (ties by id), and the total count
        before paging (None when ``count`` is False: counting a million rows is what a keyset
        page avoids; at most ``count_limit`` when given, reading no more index entries than
        that). ``after``: a keyset position ``(created_at, id)``, the last job of the previous
        page; the page starts just past it, so rows inserted meanwhile (newer) never shift it.
        Raises ValueError for a negative limit or offset."""
        if limit < 0 or offset < 0:
            raise ValueError(f"limit and offset must be >= 0, got {limit} and {offset}")
        page_query, count_query = _list_statements(
            group_id is not None,
            states is not None,
            tenant is not None,
            kind is not None,
            after is not None,
            count,
            count_limit is not None,
        )
        params: dict[str, Any] = {
            "group_id": group_id,
            "states": None if states is None else [s.value for s in states],
            "tenant": tenant,
            "kind": None if kind is None else kind.value,
            "after_at": None if after is None else after[0],
            "after_id": None if after is None else after[1],
            "page_limit": limit,
            "page_offset": offset,
            "count_limit": count_limit,
        }
        total = None
        with _one_statement(self._engine) as conn:
            rows = conn.execute(page_query, params).mappings().all()
            if count:
                total = rows[0][_TOTAL] if rows else conn.execute(count_query, params).scalar_one()
        return [job_from_row(row) for row in rows], None if total is None else int(total)

    def cancel_queued(
        self,
        *,
        group_id: str,
        tenant: str | None,
        now: datetime,
        actor: str,
        reason: str,
    ) -> list[str]:
        """Cancel every job of ``group_id`` (of ``tenant`` when given) that has not started,
        in one transaction: one conditional UPDATE and one bulk insert of their events.
        Returns the ids cancelled; started and finished jobs are left to the caller."""
        queued = [s.value for s in PLANNABLE_STATES]
        conditions = [jobs.c.group_id == group_id, jobs.c.state.in_(queued)]
        if tenant is not None:
            conditions.append(jobs.c.tenant == tenant)
        update = (
            sa.update(jobs)
            .where(*conditions)
            .values(state=JobState.CANCELLED.value, updated_at=now, **plan_values(None))
            .returning(jobs.c.id)
        )
        with write_transaction(self._engine) as conn:
            before = dict(conn.execute(sa.select(jobs.c.id, jobs.c.state).where(*conditions)).all())
            if not before:
                return []
            done = [row[0] for row in conn.execute(update.where(jobs.c.id.in_(before))).all()]
            if done:
                conn.execute(
                    sa.insert(job_events),
                    [
                        event_values(
                            JobEvent(
                                job_id=job_id,
                                at=now,
                                kind="state",
                                actor=actor,
                                reason=reason,
                                from_state=JobState(before[job_id]),
                                to_state=JobState.CANCELLED,
                            )
                        )
                        for job_id in done
                    ],
                )
                mark_jobs_dirty(conn, done)
        return done

    def prune_events(self, finished_before: datetime) -> int:
        """Delete the events of jobs that finished before ``finished_before`` (their state
        and figures stay on the job row); returns how many events went."""
        finished = sa.select(jobs.c.id).where(
            jobs.c.finished_at < finished_before,
            jobs.c.state.in_([s.value for s in TERMINAL_STATES]),
        )
        with write_transaction(self._engine) as conn:
            result = conn.execute(sa.delete(job_events).where(job_events.c.job_id.in_(finished)))
        return int(result.rowcount or 0)

    def transition(
        self,
        job_id: str,
        target: JobState,
        event: JobEvent,
        *,
        expected_from: Collection[JobState] | None = None,
        region: str | None = None,
        submission_id: str | None = None,
        started_at: datetime | None = None,
        finished_at: datetime | None = None,
        exit_code: int | None = None,
        message: str | None = None,
        clear_plan: bool = False,
    ) -> Job:
        """Move the job to ``target`` if the edge is allowed and its state is in
        ``expected_from`` (when given), set the non-None fields, stamp ``updated_at`` with
        ``event.at`` and append ``event`` (its from/to states set to the real ones).

        Raises JobNotFound or InvalidTransition (also when a racing writer got there first).
        """
        given = {
            "region": region,
            "submission_id": submission_id,
            "started_at": started_at,
            "finished_at": finished_at,
            "exit_code": exit_code,
            "message": message,
        }
        changes: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
        if clear_plan:
            changes.update(plan_values(None))
        changes.update(state=target.value, updated_at=event.at)
        with write_transaction(self._engine) as conn:
            for _ in range(_CAS_ATTEMPTS):
                current = _current_state(conn, job_id)
                if not can_transition(current, target) or (
                    expected_from is not None and current not in expected_from
                ):
                    raise InvalidTransition(job_id, current.value, target.value)
                row = _swap(conn, job_id, current, changes)
                if row is not None:
                    _insert_event(conn, event, current, target)
                    if target in TERMINAL_STATES:  # the job joins its started hour's rollup
                        mark_started_dirty(conn, [row["started_at"]])
                    return job_from_row(row)
        raise InvalidTransition(job_id, current.value, target.value)

    def save_plan(self, job_id: str, plan: Plan, event: JobEvent | None) -> bool:
        """Store ``plan`` and make the job planned if it is still plannable (pending, planned,
        retrying, suspended); append ``event`` when given. Returns False when it is not.
        ``updated_at`` becomes ``event.at``, else ``plan.planned_at``. Raises JobNotFound."""
        changes: dict[str, Any] = {
            **plan_values(plan),
            "state": JobState.PLANNED.value,
            "updated_at": event.at if event is not None else plan.planned_at,
        }
        with write_transaction(self._engine) as conn:
            for _ in range(_CAS_ATTEMPTS):
                current = _current_state(conn, job_id)
                if current not in PLANNABLE_STATES:
                    return False
                if _swap(conn, job_id, current, changes) is not None:
                    if event is not None:
                        _insert_event(conn, event, current, JobState.PLANNED)
                    return True
        return False

    def claim_due(self, now: datetime, limit: int) -> list[Job]:
        """Take up to ``limit`` planned jobs whose plan starts at or before ``now`` (earliest
        plan first, then higher priority): each becomes dispatched with ``attempt + 1``,
        ``region = plan.region``, ``submission_id = f"{id}-{attempt}"`` and
        ``updated_at = now``, with a state event. A job is never claimed twice."""
        if limit <= 0:
            return []
        planned = JobState.PLANNED.value
        due = (
            sa.select(jobs.c.id)
            .where(jobs.c.state == planned, jobs.c.plan_start <= now)
            .order_by(jobs.c.plan_start, jobs.c.priority.desc(), jobs.c.created_at, jobs.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        next_attempt = jobs.c.attempt + 1
        claim = (
            sa.update(jobs)
            .values(
                state=JobState.DISPATCHED.value,
                attempt=next_attempt,
                region=jobs.c.plan_region,
                submission_id=jobs.c.id + "-" + sa.cast(next_attempt, sa.String),
                updated_at=now,
            )
            .returning(*jobs.c)
        )
        with write_transaction(self._engine) as conn:
            # Two statements, not UPDATE ... WHERE id IN (SELECT ... LIMIT n FOR UPDATE SKIP
            # LOCKED): PostgreSQL may rescan such a subquery and so update more than n rows.
            due_ids = list(conn.execute(due).scalars())
            if not due_ids:
                return []
            rows = conn.execute(
                claim.where(jobs.c.id.in_(due_ids), jobs.c.state == planned)
            ).mappings()
            claimed = [job_from_row(row) for row in rows.all()]
            for job in claimed:
                conn.execute(sa.insert(job_events).values(event_values(_claim_event(job, now))))
        # RETURNING order is unspecified; callers dispatch in plan order.
        return sorted(claimed, key=_claim_order)

    def add_event(self, event: JobEvent) -> None:
        """Append ``event`` to its job's history. Raises JobNotFound."""
        with write_transaction(self._engine) as conn:
            _current_state(conn, event.job_id)
            conn.execute(sa.insert(job_events).values(event_values(event)))

    def events(self, job_id: str) -> list[JobEvent]:
        """The job's history, oldest first (ties in insertion order). Raises JobNotFound."""
        query = (
            sa.select(job_events)
            .where(job_events.c.job_id == job_id)
            .order_by(job_events.c.at, job_events.c.id)
        )
        with read_transaction(self._engine) as conn:
            _current_state(conn, job_id)
            rows = conn.execute(query).mappings().all()
        return [event_from_row(row) for row in rows]

    def count_by_state(self, states: Collection[JobState] | None = None) -> dict[JobState, int]:
        """How many jobs are in each of ``states`` (every state when None); each is present,
        zero when empty. Naming the live states makes it a range of the state index: every
        state counts the whole history (a scan of 1,100,000 rows took 141 ms of both cores)."""
        query = sa.select(jobs.c.state, sa.func.count()).group_by(jobs.c.state)
        wanted = list(JobState) if states is None else list(states)
        if states is not None:
            query = query.where(jobs.c.state.in_(sorted(s.value for s in wanted)))
        counts = dict.fromkeys(wanted, 0)
        with read_transaction(self._engine) as conn:
            for state, count in conn.execute(query).all():
                counts[JobState(state)] = int(count)
        return counts


@contextmanager
def _one_statement(engine: sa.Engine) -> Iterator[Connection]:
    """A connection for a read that is one statement (its own consistent snapshot): on
    PostgreSQL in autocommit, as BEGIN and COMMIT would be two more round trips to a server
    that, on a busy machine, answers each only when it gets a core (issue 8: a list page's
    time was mostly waiting on them). Elsewhere a read transaction."""
    if engine.dialect.name != "postgresql":
        with read_transaction(engine) as conn:
            yield conn
        return
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        yield conn


@functools.cache
def _list_statements(
    by_group: bool,
    by_states: bool,
    by_tenant: bool,
    by_kind: bool,
    after: bool,
    count: bool,
    capped: bool,
) -> tuple[sa.Select[Any], sa.Select[Any]]:
    """``list_jobs``' page and count statements for one combination of filters, built once
    with bound parameters: building and hashing a fresh statement per call was a tenth of a
    list request's CPU (issue 8)."""
    conditions: list[sa.ColumnElement[bool]] = []
    if by_group:
        conditions.append(jobs.c.group_id == sa.bindparam("group_id"))
    if by_states:
        conditions.append(jobs.c.state.in_(sa.bindparam("states", expanding=True)))
    if by_tenant:
        conditions.append(jobs.c.tenant == sa.bindparam("tenant"))
    if by_kind:
        conditions.append(jobs.c.kind == sa.bindparam("kind"))
    newest_first = (jobs.c.created_at.desc(), jobs.c.id.desc())
    count_query = sa.select(sa.func.count()).select_from(jobs).where(*conditions)
    if capped:
        # In the page's order, so the capped count walks the page's index (index only,
        # narrow entries) and stops at the cap, rather than a heap scan that filters.
        capped_ids = (
            sa.select(jobs.c.id)
            .where(*conditions)
            .order_by(*newest_first)
            .limit(sa.bindparam("count_limit", type_=sa.Integer))
        )
        count_query = sa.select(sa.func.count()).select_from(capped_ids.subquery())
    if after:
        # A row comparison, not ``a < x OR (a = x AND b < y)``: both databases take it as
        # the index range's bound, where the OR form filters every row before the position
        # (a deep page read all the pages before it).
        conditions.append(
            sa.tuple_(jobs.c.created_at, jobs.c.id)
            < sa.tuple_(
                sa.bindparam("after_at", type_=jobs.c.created_at.type),
                sa.bindparam("after_id", type_=jobs.c.id.type),
            )
        )
    page_query = (
        sa.select(jobs)
        .where(*conditions)
        .order_by(*newest_first)
        .limit(sa.bindparam("page_limit", type_=sa.Integer))
        .offset(sa.bindparam("page_offset", type_=sa.Integer))
    )
    if count:
        # The count rides on the page's rows (an uncorrelated subquery: computed once), a
        # round trip less per page; only an empty page asks for it on its own.
        page_query = page_query.add_columns(count_query.scalar_subquery().label(_TOTAL))
    return page_query, count_query


def _current_state(conn: Connection, job_id: str) -> JobState:
    state = conn.execute(sa.select(jobs.c.state).where(jobs.c.id == job_id)).scalar_one_or_none()
    if state is None:
        raise JobNotFound(job_id)
    return JobState(state)


def _swap(
    conn: Connection,
    job_id: str,
    expected: JobState,
    changes: dict[str, Any],
) -> sa.RowMapping | None:
    """Apply ``changes`` only if the job is still ``expected``; the new row, or None if not."""
    update = (
        sa.update(jobs)
        .where(jobs.c.id == job_id, jobs.c.state == expected.value)
        .values(changes)
        .returning(*jobs.c)
    )
    return conn.execute(update).mappings().first()


def _insert_event(
    conn: Connection,
    event: JobEvent,
    from_state: JobState,
    to_state: JobState,
) -> None:
    stored = dataclasses.replace(event, from_state=from_state, to_state=to_state)
    conn.execute(sa.insert(job_events).values(event_values(stored)))


def _claim_event(job: Job, now: datetime) -> JobEvent:
    plan = job.plan
    start = plan.start.isoformat() if plan is not None else "?"
    return JobEvent(
        job_id=job.id,
        at=now,
        kind="state",
        actor="scheduler",
        reason=f"planned start {start} reached; dispatching attempt {job.attempt} "
        f"to {job.region} as {job.submission_id}",
        from_state=JobState.PLANNED,
        to_state=JobState.DISPATCHED,
        expected_emissions_g=plan.forecast_emissions_g if plan is not None else None,
    )


def _claim_order(job: Job) -> tuple[datetime, int, datetime, str]:
    start = job.plan.start if job.plan is not None else job.created_at
    return (start, -job.spec.priority, job.created_at, job.id)


def copy_rows(conn: Connection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    """``COPY table (columns) FROM STDIN`` of ``rows`` inside ``conn``'s transaction
    (PostgreSQL only). JSON columns are sent as JSON; every row has the first row's keys.
    A column that is None in every row is left out (its default, NULL for every column that
    has no server default: a new job's dozen empty columns cost nothing to send)."""
    first = rows[0]
    unset = {
        name
        for name, value in first.items()
        if value is None
        and table.c[name].server_default is None
        and list(map(operator.itemgetter(name), rows)).count(None) == len(rows)
    }
    names = [name for name in first if name not in unset]
    as_json = [i for i, name in enumerate(names) if isinstance(table.c[name].type, sa.JSON)]
    columns = ", ".join(f'"{name}"' for name in names)
    pick = operator.itemgetter(*names)
    copy_text(
        conn,
        f'COPY "{table.name}" ({columns}) FROM STDIN',
        ((pick(row),) if len(names) == 1 else pick(row) for row in rows),
        as_json,
    )
