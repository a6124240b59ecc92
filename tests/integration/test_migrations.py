"""The Alembic migrations and the SQLAlchemy tables describe the same schema, on SQLite and on
PostgreSQL; the migrations run up and down cleanly, and twice is the same as once."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from scheduler.domain import ConfigError, JobState
from scheduler.store import SqlStore, create_store_engine
from scheduler.store.migrate import current_revision, downgrade, head_revision, upgrade
from scheduler.store.tables import metadata
from tests.fakes.store import make_event, make_job

REPO_ROOT = Path(__file__).resolve().parents[2]


def _schema_differences(url: str) -> list[object]:
    engine = create_store_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            return list(compare_metadata(context, metadata))
    finally:
        engine.dispose()


def _table_names(url: str) -> set[str]:
    engine = create_store_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_upgrade_head_matches_the_models_and_downgrade_removes_everything(
    database_url: str,
) -> None:
    assert current_revision(database_url) is None

    upgrade(database_url)

    assert current_revision(database_url) == head_revision()
    assert _schema_differences(database_url) == []
    assert _table_names(database_url) >= {t.name for t in metadata.sorted_tables}
    downgrade(database_url, "base")
    assert current_revision(database_url) is None
    assert _table_names(database_url) == {"alembic_version"}


def test_comparison_notices_a_schema_that_drifted(sqlite_url: str) -> None:
    upgrade(sqlite_url)
    engine = create_store_engine(sqlite_url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP INDEX ix_jobs_state_plan_start"))
        conn.execute(sa.text("ALTER TABLE regions ADD COLUMN stray INTEGER"))
    engine.dispose()

    kinds = sorted(str(diff[0]) for diff in _schema_differences(sqlite_url))  # type: ignore[index]

    assert kinds == ["add_index", "remove_column"]


def test_upgrade_is_idempotent_and_the_schema_serves_the_store(database_url: str) -> None:
    upgrade(database_url)
    upgrade(database_url)
    store = SqlStore(create_store_engine(database_url))

    store.add_job(make_job("j1"), make_event("j1"))

    assert store.count_by_state()[JobState.PENDING] == 1
    store.close()


def test_alembic_command_line_reads_the_url_from_the_environment(sqlite_url: str) -> None:
    env = {**os.environ, "GREENLIGHT_DATABASE_URL": sqlite_url}
    done = subprocess.run(
        [sys.executable, "-m", "alembic", "-c", str(REPO_ROOT / "alembic.ini"), "upgrade", "head"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert current_revision(sqlite_url) == head_revision()


def test_upgrade_refuses_an_unsupported_database() -> None:
    with pytest.raises(ConfigError, match="not supported"):
        upgrade("mysql://u@localhost/db")
