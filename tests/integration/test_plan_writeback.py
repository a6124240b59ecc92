"""The plan cycle's bulk write-back at cycle size, on both databases.

``tests/integration/test_plan_store.py`` writes a handful of plans (the executemany path);
here enough plans go in one call for PostgreSQL's bulk path (plans COPYed into a temporary
table, one UPDATE from it, events by COPY) and, on SQLite, for more than one chunk of the
executemany path: every plannable job gets its
plan, stamp and events with the real from-state; jobs that left the plannable states or went
into quarantine are untouched; the stored plans read back equal. A row the database refuses
in a later chunk (PostgreSQL applies chunks on a writer thread while the next is formatted)
rolls the whole write back.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from scheduler.domain import JobEvent, JobState
from scheduler.store import plans as plan_store
from scheduler.store.migrate import upgrade
from scheduler.store.sql import SqlStore, create_store_engine
from scheduler.store.tables import job_events, jobs
from tests.fakes.store import T0, make_event, make_job, make_plan

N = 700


def test_bulk_write_back_at_cycle_size(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(plan_store, "_CHUNK", 300)  # SQLite: three chunks
    monkeypatch.setattr(plan_store, "_PIPELINE_ROWS", 250)  # PostgreSQL: three, pipelined
    upgrade(database_url)
    store = SqlStore(create_store_engine(database_url))
    store.add_jobs(
        [
            (make_job(f"j{i:04d}"), make_event(f"j{i:04d}", T0, to_state=JobState.PENDING))
            for i in range(N)
        ]
    )
    first = T0 + timedelta(minutes=1)
    # some already planned (planned -> planned), one cancelled, one in quarantine
    store.save_plans(
        [
            (
                f"j{i:04d}",
                make_plan(first),
                [JobEvent(job_id=f"j{i:04d}", at=first, kind="plan", actor="t", reason="p")],
            )
            for i in range(0, N, 7)
        ]
    )
    store.transition("j0001", JobState.CANCELLED, make_event("j0001", first))
    assert store.quarantine_job("j0002", "bad numbers", make_event("j0002", first, kind="warn"))
    at = T0 + timedelta(minutes=5)
    changes = [
        (
            f"j{i:04d}",
            make_plan(at + timedelta(minutes=i % 50), region=("eu-south", "us-west")[i % 2]),
            [
                JobEvent(
                    job_id=f"j{i:04d}",
                    at=at,
                    kind="plan",
                    actor="t",
                    reason=f"plan {i}",
                    to_state=JobState.PLANNED,
                    expected_emissions_g=float(i),
                ),
                JobEvent(job_id=f"j{i:04d}", at=at, kind="fallback", actor="t", reason="old"),
            ],
        )
        for i in range(N)
    ]
    saved = store.save_plans(changes)
    assert saved == {f"j{i:04d}" for i in range(N)} - {"j0001", "j0002"}
    by_id = {job.id: job for job in store.planning_jobs()}
    for job_id, plan, _events in changes:
        if job_id not in saved:
            continue
        job = by_id[job_id]
        assert job.state is JobState.PLANNED
        assert job.plan == plan
        assert job.updated_at == at
    for job_id, before in (("j0000", JobState.PLANNED), ("j0003", JobState.PENDING)):
        tail = [(e.kind, e.from_state, e.to_state, e.reason) for e in store.events(job_id)][-2:]
        assert tail == [
            ("plan", before, JobState.PLANNED, f"plan {int(job_id[1:])}"),
            ("fallback", None, None, "old"),
        ]
    assert store.get_job("j0001").state is JobState.CANCELLED
    assert store.get_job("j0001").plan is None
    assert store.get_job("j0002").plan is None
    assert [e.kind for e in store.events("j0002")][-1] == "warn"
    with store.engine.connect() as conn:
        stamped = conn.execute(
            jobs.select().with_only_columns(jobs.c.id).where(jobs.c.updated_at == at)
        ).all()
    assert len(stamped) == len(saved)
    with store.engine.connect() as conn:
        events_at = conn.execute(
            sa.select(sa.func.count()).select_from(job_events).where(job_events.c.at == at)
        ).scalar_one()
    assert events_at == 2 * len(saved)  # every chunk's events, once
    # The plan's times are stored as the column type binds them: SQL comparisons find them
    # (SQLite compares the stored text; the dispatcher's claim selects by plan_start).
    with store.engine.connect() as conn:
        for job_id, plan, _events in changes[3:6]:
            found = conn.execute(
                jobs.select()
                .with_only_columns(jobs.c.id)
                .where(jobs.c.plan_start == plan.start, jobs.c.plan_end == plan.end)
                .where(jobs.c.id == job_id)
            ).all()
            assert len(found) == 1


@pytest.mark.postgres
def test_a_refused_row_in_a_later_chunk_writes_nothing(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(plan_store, "_PIPELINE_ROWS", 250)
    upgrade(pg_url)
    store = SqlStore(create_store_engine(pg_url))
    store.add_jobs(
        [
            (make_job(f"j{i:04d}"), make_event(f"j{i:04d}", T0, to_state=JobState.PENDING))
            for i in range(N)
        ]
    )
    at = T0 + timedelta(minutes=5)
    # The third chunk has a region longer than the column holds (64): PostgreSQL refuses that
    # chunk's UPDATE after the writer thread applied the first two and their events.
    changes = [
        (
            f"j{i:04d}",
            make_plan(at, region="r" * 80 if i == 600 else "eu-south"),
            [JobEvent(job_id=f"j{i:04d}", at=at, kind="plan", actor="t", reason=f"plan {i}")],
        )
        for i in range(N)
    ]
    with pytest.raises(sa.exc.DBAPIError, match="too long"):
        store.save_plans(changes)
    pending = store.planning_jobs()
    assert len(pending) == N
    assert {job.state for job in pending} == {JobState.PENDING}
    assert all(job.plan is None for job in pending)
    with store.engine.connect() as conn:
        events_at = conn.execute(
            sa.select(sa.func.count()).select_from(job_events).where(job_events.c.at == at)
        ).scalar_one()
    assert events_at == 0
    # The connection went back to the pool usable: the same plans, fixed, are all saved.
    fixed = [(job_id, make_plan(at), events) for job_id, _plan, events in changes]
    assert len(store.save_plans(fixed)) == N
