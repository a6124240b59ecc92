"""``ended_serve_jobs`` on a fresh SQLite file and PostgreSQL: the Serve deployments that started
and finished since a time (where the scheduler writes their last energy estimate), and no
other job."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from scheduler.domain import JobKind, JobState
from scheduler.domain.serve import ServeApp
from scheduler.store import SqlStore, create_store_engine
from scheduler.store.tables import metadata
from tests.fakes.store import T0, make_event, make_job, make_spec

APP = ServeApp(import_path="workers.examples.serve_app:app")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, sqlite_url: str) -> Iterator[SqlStore]:
    url = sqlite_url if request.param == "sqlite" else request.getfixturevalue("pg_url")
    engine = create_store_engine(url)
    metadata.create_all(engine)
    yield SqlStore(engine)
    engine.dispose()


def _add(
    store: SqlStore,
    job_id: str,
    *,
    serve: ServeApp | None,
    state: JobState,
    finished_min: float | None,
    started: bool = True,
) -> None:
    spec = make_spec(
        kind=JobKind.DEPLOYMENT, expected_duration_s=None, max_delay_s=None, serve=serve
    )
    job = make_job(
        job_id,
        spec=spec,
        state=state,
        attempt=1,
        region="a",
        submission_id=f"{job_id}-1",
        started_at=T0 if started else None,
        finished_at=None if finished_min is None else T0 + timedelta(minutes=finished_min),
    )
    store.add_job(job, make_event(job_id))


def test_only_serve_deployments_that_ran_and_ended_since_the_time(store: SqlStore) -> None:
    _add(store, "serve-ended", serve=APP, state=JobState.CANCELLED, finished_min=30)
    _add(store, "serve-failed", serve=APP, state=JobState.FAILED, finished_min=45)
    _add(store, "serve-long-ago", serve=APP, state=JobState.CANCELLED, finished_min=5)
    _add(store, "serve-running", serve=APP, state=JobState.RUNNING, finished_min=None)
    _add(
        store,
        "serve-never-ran",
        serve=APP,
        state=JobState.CANCELLED,
        finished_min=40,
        started=False,
    )
    _add(store, "plain-ended", serve=None, state=JobState.CANCELLED, finished_min=30)
    ended = store.ended_serve_jobs(T0 + timedelta(minutes=20))
    assert [j.id for j in ended] == ["serve-ended", "serve-failed"]  # by finish time
    assert ended[0].spec.serve == APP
    assert ended[0].finished_at == T0 + timedelta(minutes=30)
