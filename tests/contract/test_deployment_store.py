"""DeploymentStore on a fresh SQLite file and PostgreSQL: a move starts once, switches the
endpoint, region and submission id once, and ends (completed or rolled back) leaving the job
running with no move in flight, found again by the next relocation step."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
import sqlalchemy as sa

from scheduler.domain import JobKind, JobState
from scheduler.domain.deployments import EndpointConflict, Move, MovePhase, completed
from scheduler.store import SqlStore, create_store_engine
from scheduler.store.tables import metadata
from tests.fakes.store import T0, make_event, make_job, make_spec

LATER = T0 + timedelta(hours=4)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, sqlite_url: str) -> Iterator[SqlStore]:
    url = sqlite_url if request.param == "sqlite" else request.getfixturevalue("pg_url")
    engine = create_store_engine(url)
    metadata.create_all(engine)
    yield SqlStore(engine)
    engine.dispose()


def _running(store: SqlStore, job_id: str = "d-1") -> None:
    spec = make_spec(kind=JobKind.DEPLOYMENT, expected_duration_s=None, max_delay_s=None)
    job = make_job(
        job_id,
        spec=spec,
        state=JobState.RUNNING,
        attempt=1,
        region="a",
        submission_id=f"{job_id}-1",
        started_at=T0,
    )
    store.add_job(job, make_event(job_id))


def _move(job_id: str = "d-1") -> Move:
    return Move(
        phase=MovePhase.STARTING,
        from_region="a",
        to_region="b",
        old_attempt=1,
        old_submission_id=f"{job_id}-1",
        new_attempt=2,
        new_submission_id=f"{job_id}-2",
        started_at=LATER,
        health_deadline=LATER + timedelta(minutes=10),
        expected_saving_g=12.5,
        expected_saving_pct=25.0,
        stay_g=50.0,
        move_g=37.5,
        horizon_s=28800.0,
    )


def test_a_move_switches_once_and_completes(store: SqlStore) -> None:
    _running(store)
    assert store.set_endpoint("d-1", 1, "http://10.0.0.1:80", T0) is True
    assert [j.id for j in store.running_deployments()] == ["d-1"]
    move = _move()
    # Several replicas decide the same move at once: one starts it.
    with ThreadPoolExecutor(4) as pool:
        won = list(pool.map(lambda _: store.start_move("d-1", move, make_event("d-1")), range(4)))
    assert won.count(True) == 1
    job = store.get_job("d-1")
    assert (job.state, job.attempt, job.move) == (JobState.RELOCATING, 2, move)
    assert store.running_deployments() == []
    assert store.moving_jobs(T0) == [(job, None)]

    submitted = dataclasses.replace(move, submitted=True)
    assert store.save_move("d-1", move, submitted, []) is True
    switched = dataclasses.replace(
        submitted, phase=MovePhase.DRAINING, switched_at=LATER, drain_until=LATER
    )
    assert store.save_move("d-1", submitted, switched, []) is False  # no endpoint reported yet
    assert store.set_endpoint("d-1", 2, "http://10.0.0.2:81", LATER) is True
    assert store.moving_jobs(T0)[0][1] == "http://10.0.0.2:81"
    assert store.save_move("d-1", submitted, switched, [make_event("d-1", kind="switch")])
    assert store.save_move("d-1", submitted, switched, []) is False  # once
    job = store.get_job("d-1")
    assert (job.endpoint, job.region, job.submission_id) == ("http://10.0.0.2:81", "b", "d-1-2")
    with pytest.raises(EndpointConflict):
        store.set_endpoint("d-1", 1, "http://10.0.0.1:82", LATER)  # the old copy drains

    done = completed(switched, LATER + timedelta(minutes=1))
    assert store.end_move("d-1", switched, [], now=done.finished_at, relocation=done)
    assert store.end_move("d-1", switched, [], now=done.finished_at, relocation=done) is False
    job = store.get_job("d-1")
    assert (job.state, job.move, job.relocations, job.moved_at) == (
        JobState.RUNNING,
        None,
        (done,),
        done.finished_at,
    )
    assert store.moving_jobs(T0) == []
    assert [j.id for j in store.running_deployments()] == ["d-1"]  # the next step sees it
    with store.engine.connect() as conn:  # SQL NULL, not the JSON text 'null'
        cleared = conn.execute(
            sa.text("SELECT count(*) FROM jobs WHERE relocation IS NULL AND id = 'd-1'")
        ).scalar_one()
    assert cleared == 1
    events = [e.to_state for e in store.events("d-1") if e.kind == "state"]
    assert events[-2:] == [JobState.RELOCATING, JobState.RUNNING]


def test_a_rolled_back_move_leaves_the_old_copy_serving(store: SqlStore) -> None:
    _running(store)
    store.set_endpoint("d-1", 1, "http://10.0.0.1:80", T0)
    move = _move()
    assert store.start_move("d-1", move, make_event("d-1"))
    assert store.end_move("d-1", move, [], now=LATER, relocation=None)
    job = store.get_job("d-1")
    assert (job.state, job.region, job.submission_id, job.endpoint) == (
        JobState.RUNNING,
        "a",
        "d-1-1",
        "http://10.0.0.1:80",
    )
    assert (job.attempt, job.relocations, job.moved_at) == (2, (), LATER)
    # The serving copy is attempt 1 though the count is 2: its reports still land, the
    # rolled-back copy's do not; and the next move starts from there, as attempt 3.
    assert store.set_endpoint("d-1", 1, "http://10.0.0.1:81", LATER) is True
    with pytest.raises(EndpointConflict):
        store.set_endpoint("d-1", 2, "http://10.0.0.2:81", LATER)
    again = dataclasses.replace(move, new_attempt=3, new_submission_id="d-1-3")
    assert store.start_move("d-1", again, make_event("d-1"))
    # Two attempts went to moves: neither counts against the job's retries.
    assert store.get_job("d-1").move_attempts == 2


def test_a_job_cancelled_mid_move_is_still_found_to_stop_its_other_copy(store: SqlStore) -> None:
    _running(store)
    store.start_move("d-1", _move(), make_event("d-1"))
    store.transition(
        "d-1",
        JobState.CANCELLED,
        make_event("d-1", at=LATER),
        finished_at=LATER,
    )
    assert [j.id for j, _ in store.moving_jobs(LATER - timedelta(days=1))] == ["d-1"]
    assert store.moving_jobs(LATER + timedelta(seconds=1)) == []  # a day later: not read again


def test_a_training_job_has_no_endpoint(store: SqlStore) -> None:
    store.add_job(make_job("t-1"), make_event("t-1"))
    with pytest.raises(EndpointConflict, match="only a deployment"):
        store.set_endpoint("t-1", None, "http://10.0.0.1:80", T0)
