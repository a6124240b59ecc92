"""Events of many jobs in one read, for views that summarise recent history (the dashboard)."""

from __future__ import annotations

from collections.abc import Collection

import sqlalchemy as sa

from scheduler.domain import JobEvent
from scheduler.store.engine import SqlAdapter, read_transaction
from scheduler.store.rows import event_from_row
from scheduler.store.tables import job_events

# Bound parameters per IN list: SQLite's limit is 32,766 (older builds 999); stay well under.
_CHUNK = 900


class SqlEventReads(SqlAdapter):
    """Bulk event reads over SQLAlchemy Core (SQLite or PostgreSQL)."""

    def events_of(
        self, job_ids: Collection[str], kinds: Collection[str], *, limit: int
    ) -> list[JobEvent]:
        """The newest ``limit`` events of ``kinds`` among ``job_ids``' histories, newest first
        (ties: the later inserted first). One query per 900 jobs, each an index range per job
        (``ix_job_events_job_id_at``). Unknown ids have no events; nothing is raised."""
        ids = sorted(set(job_ids))
        if not ids or not kinds or limit <= 0:
            return []
        out: list[JobEvent] = []
        with read_transaction(self._engine) as conn:
            for i in range(0, len(ids), _CHUNK):
                query = (
                    sa.select(job_events)
                    .where(
                        job_events.c.job_id.in_(ids[i : i + _CHUNK]),
                        job_events.c.kind.in_(sorted(set(kinds))),
                    )
                    .order_by(job_events.c.at.desc(), job_events.c.id.desc())
                    .limit(limit)
                )
                out.extend(event_from_row(row) for row in conn.execute(query).mappings().all())
        out.sort(key=lambda e: (e.at, e.id or 0), reverse=True)
        return out[:limit]
