"""Migration 0011: the finished-at and group indexes hold only the rows that have the column
set, on both databases, as the tables declare; the queries that filter on the columns (a
group's list and cancel; retention by finish time) can still use them; and 0011's downgrade
restores the full indexes with the stored jobs untouched."""

from __future__ import annotations

import sqlalchemy as sa

from scheduler.domain import JobState
from scheduler.store import SqlStore, create_store_engine
from scheduler.store.migrate import downgrade, upgrade
from scheduler.store.tables import jobs
from tests.fakes.store import make_event, make_job

PARTIAL = {
    "ix_jobs_finished_at": "finished_at IS NOT NULL",
    "ix_jobs_group_id_created_at_id": "group_id IS NOT NULL",
}


def _index_sql(engine: sa.Engine) -> dict[str, str]:
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            rows = conn.execute(
                sa.text(
                    "SELECT indexname, indexdef FROM pg_indexes "
                    "WHERE tablename = 'jobs' AND schemaname = current_schema()"
                )
            )
        else:
            rows = conn.execute(
                sa.text(
                    "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
                )
            )
        return {name: " ".join(sql.split()) for name, sql in rows}


def _queries_on_the_columns(finished_before: str) -> dict[str, str]:
    """By index: a group's list page, and retention's finished-before filter."""
    return {
        "ix_jobs_group_id_created_at_id": "SELECT id FROM jobs WHERE group_id = 'g' "
        "ORDER BY created_at DESC, id DESC LIMIT 50",
        "ix_jobs_finished_at": f"SELECT id FROM jobs WHERE finished_at < {finished_before}",
    }


def _where(sql: str) -> str:
    return sql.split(" WHERE ", 1)[1].strip("()").lower() if " WHERE " in sql else ""


def test_the_two_indexes_are_partial_as_the_tables_declare(database_url: str) -> None:
    upgrade(database_url)
    engine = create_store_engine(database_url)
    try:
        found = _index_sql(engine)
        for name, where in PARTIAL.items():
            assert _where(found[name]) == where.lower()
        declared = {ix.name: ix for ix in jobs.indexes}
        for name, where in PARTIAL.items():
            for dialect in ("postgresql", "sqlite"):
                assert str(declared[name].dialect_options[dialect]["where"]) == where
    finally:
        engine.dispose()


def test_the_queries_on_those_columns_still_use_them(database_url: str) -> None:
    upgrade(database_url)
    engine = create_store_engine(database_url)
    postgres = engine.dialect.name == "postgresql"
    explain = "EXPLAIN" if postgres else "EXPLAIN QUERY PLAN"
    queries = _queries_on_the_columns(finished_before="now()" if postgres else "'2026-01-01'")
    try:
        with engine.begin() as conn:
            if postgres:  # a tiny table: make the plan tell whether the index can serve
                conn.execute(sa.text("SET LOCAL enable_seqscan = off"))
            for name, query in queries.items():
                plan = " ".join(str(row[-1]) for row in conn.execute(sa.text(f"{explain} {query}")))
                assert name in plan, plan
    finally:
        engine.dispose()


def test_downgrading_0011_restores_full_indexes_and_keeps_the_jobs(database_url: str) -> None:
    upgrade(database_url)
    store = SqlStore(create_store_engine(database_url))
    store.add_jobs([(make_job("j1"), make_event("j1", to_state=JobState.PENDING))])
    store.close()
    downgrade(database_url, "0010")
    engine = create_store_engine(database_url)
    try:
        found = _index_sql(engine)
        for name in PARTIAL:
            assert _where(found[name]) == ""
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT id FROM jobs")).scalars().all() == ["j1"]
    finally:
        engine.dispose()
    upgrade(database_url)
    engine = create_store_engine(database_url)
    try:
        assert all(_where(_index_sql(engine)[n]) == w.lower() for n, w in PARTIAL.items())
    finally:
        engine.dispose()
