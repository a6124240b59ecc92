"""The SQL ProgressStore: each job's functional-unit total (``jobs.functional_units*``)."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import sqlalchemy as sa

from scheduler.domain import JobNotFound
from scheduler.domain.progress import JobProgress, ProgressConflict, supersedes
from scheduler.store.engine import SqlAdapter, read_transaction, write_transaction
from scheduler.store.tables import jobs

_COLUMNS = (
    jobs.c.id,
    jobs.c.functional_units_attempt,
    jobs.c.functional_units,
    jobs.c.functional_unit,
)
_CHUNK = 1000  # ids per IN (...) list


def _progress_of(row: Any) -> JobProgress | None:
    job_id, attempt, units, unit = row
    if attempt is None or units is None:
        return None
    return JobProgress(job_id=job_id, attempt=int(attempt), units=float(units), unit=unit or "")


class SqlProgressStore(SqlAdapter):
    """ProgressStore over SQLAlchemy Core: the totals live on the job's row."""

    def record_progress(self, progress: JobProgress) -> bool:
        """Store ``progress`` if it supersedes the job's stored total; True if it changed it,
        False for an exact repeat. Raises JobNotFound, or ProgressConflict (nothing stored) for
        a lower total of the same attempt or an older attempt. The row lock (``FOR UPDATE``,
        SQLite's write lock) makes concurrent reports of one job take turns."""
        with write_transaction(self._engine) as conn:
            row = conn.execute(
                sa.select(*_COLUMNS).where(jobs.c.id == progress.job_id).with_for_update()
            ).first()
            if row is None:
                raise JobNotFound(progress.job_id)
            stored = _progress_of(row)
            verdict = supersedes(progress, stored)
            if verdict is None:
                assert stored is not None  # supersedes(x, None) is True
                raise ProgressConflict(
                    f"job {progress.job_id!r} has {stored.units:g} {stored.unit} from attempt "
                    f"{stored.attempt}; {progress.units:g} from attempt {progress.attempt} "
                    "would go back (a total only grows within an attempt)"
                )
            if verdict:
                conn.execute(
                    jobs.update()
                    .where(jobs.c.id == progress.job_id)
                    .values(
                        functional_units=progress.units,
                        functional_unit=progress.unit,
                        functional_units_attempt=progress.attempt,
                    )
                )
            return verdict

    def job_progress(self, job_ids: Collection[str]) -> dict[str, JobProgress]:
        """The stored totals of those of ``job_ids`` that have one, by job id."""
        ids = list(job_ids)
        out: dict[str, JobProgress] = {}
        with read_transaction(self._engine) as conn:
            for i in range(0, len(ids), _CHUNK):
                query = sa.select(*_COLUMNS).where(
                    jobs.c.id.in_(ids[i : i + _CHUNK]), jobs.c.functional_units.is_not(None)
                )
                for row in conn.execute(query):
                    progress = _progress_of(row)
                    if progress is not None:
                        out[progress.job_id] = progress
        return out
