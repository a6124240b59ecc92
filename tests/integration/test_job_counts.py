"""The gauges' job counts (``scheduler.service.job_counts``) on a real SQLite store: live states
are counted at every read, terminal ones (the whole history) at most once per TTL."""

from __future__ import annotations

from datetime import timedelta

from scheduler.domain import LIVE_STATES, JobState
from scheduler.service.job_counts import JobCounts
from scheduler.store import SqlStore, create_store_engine
from scheduler.store.migrate import upgrade
from tests.fakes.store import T0, make_event, make_job


def _store(sqlite_url: str) -> SqlStore:
    upgrade(sqlite_url)
    store = SqlStore(create_store_engine(sqlite_url))
    store.add_jobs(
        [(make_job(i), make_event(i, to_state=JobState.PENDING)) for i in ("a", "b", "c")]
    )
    return store


def _cancel(store: SqlStore, job_id: str) -> None:
    at = T0 + timedelta(minutes=1)
    store.transition(job_id, JobState.CANCELLED, make_event(job_id, at), finished_at=at)


def test_live_counts_are_fresh_and_finished_ones_wait_for_the_ttl(sqlite_url: str) -> None:
    store = _store(sqlite_url)
    counts = JobCounts(ttl_s=3600.0)
    first = counts.read(store)
    assert set(first) == set(JobState)
    assert (first[JobState.PENDING], first[JobState.CANCELLED]) == (3, 0)
    _cancel(store, "a")
    second = counts.read(store)
    # the queue moved at once; the history's count is the one read within the hour
    assert (second[JobState.PENDING], second[JobState.CANCELLED]) == (2, 0)
    store.close()


def test_finished_counts_are_read_again_once_the_ttl_passed(sqlite_url: str) -> None:
    store = _store(sqlite_url)
    counts = JobCounts(ttl_s=0.0)
    counts.read(store)
    _cancel(store, "a")
    _cancel(store, "b")
    again = counts.read(store)
    assert (again[JobState.PENDING], again[JobState.CANCELLED]) == (1, 2)
    assert JobState.CANCELLED not in LIVE_STATES
    assert JobState.RELOCATING in LIVE_STATES
    store.close()
