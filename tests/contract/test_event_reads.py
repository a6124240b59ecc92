"""``events_of`` on a fresh SQLite file and PostgreSQL: the newest events of some kinds among
many jobs, in one read, newest first, bounded."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from scheduler.store import SqlStore, create_store_engine
from scheduler.store.tables import metadata
from tests.fakes.store import T0, make_event, make_job


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, sqlite_url: str) -> Iterator[SqlStore]:
    url = sqlite_url if request.param == "sqlite" else request.getfixturevalue("pg_url")
    engine = create_store_engine(url)
    metadata.create_all(engine)
    yield SqlStore(engine)
    engine.dispose()


def test_the_newest_events_of_the_kinds_asked_among_the_jobs_asked(store: SqlStore) -> None:
    for job_id in ("a", "b", "c"):
        store.add_job(make_job(job_id), make_event(job_id))
    minute = timedelta(minutes=1)
    store.add_event(make_event("a", T0 + minute, kind="warning", reason="a1"))
    store.add_event(make_event("b", T0 + 3 * minute, kind="warning", reason="b1"))
    store.add_event(make_event("a", T0 + 2 * minute, kind="fallback", reason="a2"))
    store.add_event(make_event("c", T0 + 4 * minute, kind="warning", reason="c1"))  # not asked
    store.add_event(make_event("b", T0 + 3 * minute, kind="warning", reason="b2"))  # a tie

    got = store.events_of(["a", "b", "missing"], ["warning", "fallback"], limit=10)
    # Newest first; a tie in time: the later inserted first.
    assert [e.reason for e in got] == ["b2", "b1", "a2", "a1"]
    assert all(e.id is not None for e in got)
    assert [e.reason for e in store.events_of(["a", "b"], ["warning"], limit=2)] == ["b2", "b1"]
    assert store.events_of([], ["warning"], limit=10) == []
    assert store.events_of(["a"], [], limit=10) == []
    assert store.events_of(["a"], ["warning"], limit=0) == []
