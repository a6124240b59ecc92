"""ProgressStore on a fresh SQLite file and PostgreSQL: a job's functional-unit total only
grows within an attempt, a later attempt replaces it, a repeat changes nothing."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from scheduler.domain import JobNotFound
from scheduler.domain.progress import JobProgress, ProgressConflict
from scheduler.store import SqlStore, create_store_engine
from scheduler.store.tables import metadata
from tests.fakes.store import make_event, make_job


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, sqlite_url: str) -> Iterator[SqlStore]:
    url = sqlite_url if request.param == "sqlite" else request.getfixturevalue("pg_url")
    engine = create_store_engine(url)
    metadata.create_all(engine)
    yield SqlStore(engine)
    engine.dispose()


def _p(attempt: int, units: float, job_id: str = "j-1") -> JobProgress:
    return JobProgress(job_id=job_id, attempt=attempt, units=units, unit="steps")


def test_totals_grow_within_an_attempt_and_a_later_attempt_replaces_them(store: SqlStore) -> None:
    store.add_job(make_job("j-1"), make_event("j-1"))
    store.add_job(make_job("j-2"), make_event("j-2"))
    assert store.job_progress(["j-1", "j-2"]) == {}
    assert store.record_progress(_p(1, 100)) is True
    assert store.record_progress(_p(1, 100)) is False  # a retried POST
    assert store.record_progress(_p(1, 250.5)) is True
    with pytest.raises(ProgressConflict, match=r"250\.5 steps from attempt 1"):
        store.record_progress(_p(1, 200))
    assert store.job_progress(["j-1"]) == {"j-1": _p(1, 250.5)}
    # A retry resumed from a checkpoint counts from there: its total replaces the first's.
    assert store.record_progress(_p(2, 120)) is True
    with pytest.raises(ProgressConflict, match="from attempt 2"):
        store.record_progress(_p(1, 999))  # the old attempt's late report
    assert store.job_progress(["j-1", "j-2", "j-none"]) == {"j-1": _p(2, 120)}


def test_unknown_job_is_not_found(store: SqlStore) -> None:
    with pytest.raises(JobNotFound):
        store.record_progress(_p(1, 1, job_id="j-nope"))


def test_stored_columns_are_the_migration_columns(store: SqlStore) -> None:
    store.add_job(make_job("j-1"), make_event("j-1"))
    store.record_progress(_p(3, 42))
    with store._engine.connect() as conn:
        row = conn.execute(
            sa.text(
                "SELECT functional_units, functional_unit, functional_units_attempt "
                "FROM jobs WHERE id = 'j-1'"
            )
        ).one()
    assert tuple(row) == (42.0, "steps", 3)


@pytest.mark.parametrize("units", [float("nan"), float("inf"), -1.0, 2e15])
def test_impossible_totals_are_refused_before_the_store(units: float) -> None:
    with pytest.raises(ValueError, match="units"):
        _p(1, units)
