"""Migration 0012: the plan cycle's incremental read (rows stamped since its last read) is an
index range on ``updated_at`` on both databases, not a scan of every stored job; 0012's
downgrade drops the index and keeps the jobs."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from scheduler.domain import JobState
from scheduler.store import SqlStore, create_store_engine
from scheduler.store import plans as plan_store
from scheduler.store.migrate import downgrade, upgrade
from tests.fakes.store import T0, make_event, make_job

INDEX = "ix_jobs_updated_at"


def _plan_of_changes_read(engine: sa.Engine) -> str:
    """The database's plan for the read exactly as the store sends it (SQLAlchemy compiles and
    binds it; the statement gets its EXPLAIN prefix on the way to the driver)."""
    postgres = engine.dialect.name == "postgresql"
    explain = "EXPLAIN" if postgres else "EXPLAIN QUERY PLAN"
    with engine.begin() as conn:
        if postgres:  # a tiny table: make the plan tell whether the index can serve
            conn.execute(sa.text("SET LOCAL enable_seqscan = off"))

        @sa.event.listens_for(conn, "before_cursor_execute", retval=True)
        def _explain(*args: Any) -> tuple[str, Any]:
            return f"{explain} {args[2]}", args[3]

        result = conn.execute(plan_store._changed_since(T0 - timedelta(minutes=1)))
        return " ".join(str(row[-1]) for row in result.cursor.fetchall())


def test_the_incremental_read_is_an_index_range(database_url: str) -> None:
    upgrade(database_url)
    store = SqlStore(create_store_engine(database_url))
    store.add_jobs([(make_job("j1"), make_event("j1", T0, to_state=JobState.PENDING))])
    try:
        plan = _plan_of_changes_read(store.engine)
        assert INDEX in plan, plan
        assert "Seq Scan" not in plan, plan
        assert "SCAN jobs" not in plan, plan
    finally:
        store.close()


def test_downgrading_0012_drops_the_index_and_keeps_the_jobs(database_url: str) -> None:
    upgrade(database_url)
    store = SqlStore(create_store_engine(database_url))
    store.add_jobs([(make_job("j1"), make_event("j1", T0, to_state=JobState.PENDING))])
    store.close()
    downgrade(database_url, "0011")
    engine = create_store_engine(database_url)
    try:
        assert INDEX not in {ix["name"] for ix in sa.inspect(engine).get_indexes("jobs")}
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT id FROM jobs")).scalars().all() == ["j1"]
    finally:
        engine.dispose()
    upgrade(database_url)
    engine = create_store_engine(database_url)
    try:
        assert INDEX in {ix["name"] for ix in sa.inspect(engine).get_indexes("jobs")}
    finally:
        engine.dispose()
