"""The SQL EnergyStore: workers' energy reports, idempotent by their natural key."""

from __future__ import annotations

from collections.abc import Collection, Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.sql.dml import ReturningInsert

from scheduler.domain import EnergyReport, JobNotFound
from scheduler.store.engine import SqlAdapter, read_transaction, write_transaction
from scheduler.store.rows import energy_from_row, energy_values
from scheduler.store.tables import energy_reports, jobs

_REPORT_KEY = ("job_id", "attempt", "device", "interval_start")


class SqlEnergyStore(SqlAdapter):
    """EnergyStore over SQLAlchemy Core."""

    def add_energy_reports(self, reports: Sequence[EnergyReport]) -> int:
        """Insert ``reports`` atomically; one whose ``(job_id, attempt, device,
        interval_start)`` is already stored (or repeated in the batch) is ignored, never
        updated. Returns how many were new. Raises JobNotFound if a report names an unknown
        job (then nothing is stored)."""
        if not reports:
            return 0
        with write_transaction(self._engine) as conn:
            _check_jobs_exist(conn, {r.job_id for r in reports})
            insert = _insert_ignoring_duplicates(conn)
            # Count the ids RETURNING gives back: rowcount is not reliable across drivers.
            return sum(
                len(conn.execute(insert.values(energy_values(report))).all()) for report in reports
            )

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


def _check_jobs_exist(conn: Connection, job_ids: set[str]) -> None:
    found = set(conn.execute(sa.select(jobs.c.id).where(jobs.c.id.in_(job_ids))).scalars())
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
