"""The SQL EnergyStore: workers' energy reports, idempotent by their natural key."""

from __future__ import annotations

from collections.abc import Collection, Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.sql.dml import ReturningInsert

from scheduler.domain import EnergyReport, JobNotFound
from scheduler.domain.energy import new_reports
from scheduler.store.engine import SqlAdapter, read_transaction, write_transaction
from scheduler.store.rollup import mark_jobs_dirty
from scheduler.store.rows import energy_from_row, energy_values
from scheduler.store.tables import energy_reports, jobs

_REPORT_KEY = ("job_id", "attempt", "device", "interval_start")


class SqlEnergyStore(SqlAdapter):
    """EnergyStore over SQLAlchemy Core."""

    def add_energy_reports(self, reports: Sequence[EnergyReport]) -> int:
        """Insert ``reports`` atomically and return how many were new.

        An exact repeat of a stored report (or of one earlier in the batch) is ignored, so a
        retried POST counts nothing twice. Raises EnergyConflict, storing nothing, for the same
        ``(job_id, attempt, device, interval_start)`` with other figures or an interval that
        overlaps a stored one of the same job, attempt and device; JobNotFound if a report
        names an unknown job. Concurrent calls for one job are serialised by a lock on its row.
        """
        if not reports:
            return 0
        with write_transaction(self._engine) as conn:
            _check_jobs_exist(conn, {r.job_id for r in reports})
            fresh = new_reports(_neighbours(conn, reports), reports)
            if not fresh:
                return 0
            insert = _insert_ignoring_duplicates(conn)
            # Count the ids RETURNING gives back: rowcount is not reliable across drivers.
            added = sum(
                len(conn.execute(insert.values(energy_values(report))).all()) for report in fresh
            )
            # Last, so the marker's row lock is held for the shortest time (rollup docstring).
            mark_jobs_dirty(conn, sorted({r.job_id for r in fresh}))
            return added

    def energy_reports(self, job_ids: Collection[str] | None = None) -> list[EnergyReport]:
        """Reports for ``job_ids`` (all jobs when None), ordered by ``interval_start``, then
        job, attempt and device."""
        if job_ids is not None and not job_ids:
            return []
        query = sa.select(energy_reports).order_by(
            energy_reports.c.interval_start,
            energy_reports.c.job_id,
            energy_reports.c.attempt,
            energy_reports.c.device,
        )
        if job_ids is not None:
            query = query.where(energy_reports.c.job_id.in_(list(job_ids)))
        with read_transaction(self._engine) as conn:
            rows = conn.execute(query).mappings().all()
        return [energy_from_row(row) for row in rows]


def _neighbours(conn: Connection, reports: Sequence[EnergyReport]) -> list[EnergyReport]:
    """Stored reports of the same jobs, attempts and devices whose intervals touch the span of
    ``reports``: all a conflict or overlap could involve, without reading a job's whole history."""
    first = min(r.interval_start for r in reports)
    last = max(r.interval_end for r in reports)
    c = energy_reports.c
    keys = {(r.job_id, r.attempt, r.device) for r in reports}
    query = sa.select(energy_reports).where(
        sa.tuple_(c.job_id, c.attempt, c.device).in_(sorted(keys)),
        c.interval_start <= last,
        c.interval_end >= first,
    )
    return [energy_from_row(row) for row in conn.execute(query).mappings()]


def _check_jobs_exist(conn: Connection, job_ids: set[str]) -> None:
    # FOR UPDATE (PostgreSQL) serialises concurrent reports for one job; SQLite's write
    # transaction is already exclusive.
    select = sa.select(jobs.c.id).where(jobs.c.id.in_(job_ids)).with_for_update()
    found = set(conn.execute(select).scalars())
    missing = sorted(job_ids - found)
    if missing:
        raise JobNotFound(missing[0])


def _insert_ignoring_duplicates(conn: Connection) -> ReturningInsert[tuple[int]]:
    insert: postgresql.Insert | sqlite.Insert
    if conn.dialect.name == "postgresql":
        insert = postgresql.insert(energy_reports)
    else:
        insert = sqlite.insert(energy_reports)
    return insert.on_conflict_do_nothing(index_elements=list(_REPORT_KEY)).returning(
        energy_reports.c.id
    )
