"""The plan cycle's store side on both databases: the bulk write-back saves only jobs still
plannable (one transaction, events with the real from-state), and the kept job table follows
every change (new rows, rows that left, rows written with an old stamp)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from scheduler.domain import JobEvent, JobKind, JobState, Resources
from scheduler.domain.serve import ServeApp
from scheduler.service.jobtable import JobTable
from scheduler.store.migrate import upgrade
from scheduler.store.sql import SqlStore, create_store_engine
from tests.fakes.store import T0, make_event, make_job, make_plan, make_spec


def _store(url: str) -> SqlStore:
    upgrade(url)
    return SqlStore(create_store_engine(url))


def _add(store: SqlStore, job_id: str, at: datetime = T0, **fields: Any) -> None:
    store.add_job(
        make_job(job_id, created_at=at, **fields), make_event(job_id, at, to_state=JobState.PENDING)
    )


def test_bulk_write_back_saves_only_plannable_jobs(database_url: str) -> None:
    store = _store(database_url)
    for job_id in ("a", "b", "c"):
        _add(store, job_id)
    store.transition("c", JobState.CANCELLED, make_event("c", T0 + timedelta(seconds=1)))
    at = T0 + timedelta(minutes=5)
    plans = [
        (
            job_id,
            make_plan(at, region="eu-south"),
            [
                JobEvent(
                    job_id=job_id,
                    at=at,
                    kind="plan",
                    actor="t",
                    reason="p",
                    to_state=JobState.PLANNED,
                ),
                JobEvent(job_id=job_id, at=at, kind="fallback", actor="t", reason="old forecast"),
            ],
        )
        for job_id in ("a", "b", "c")
    ]
    assert store.save_plans(plans) == {"a", "b"}
    for job_id in ("a", "b"):
        job = store.get_job(job_id)
        assert job.state is JobState.PLANNED
        assert job.plan is not None
        assert job.plan.region == "eu-south"
        assert job.updated_at == at
        kinds = [(e.kind, e.from_state) for e in store.events(job_id)]
        assert kinds[-2:] == [("plan", JobState.PENDING), ("fallback", None)]
    assert store.get_job("c").state is JobState.CANCELLED
    assert [e.kind for e in store.events("c")][-1] == "state"


def test_the_job_table_follows_changes(database_url: str) -> None:
    store = _store(database_url)
    for job_id in ("a", "b"):
        _add(store, job_id)
    table = JobTable()
    now = T0 + timedelta(minutes=1)
    assert {j.id for j in table.refresh(store, now)} == {"a", "b"}

    later = now + timedelta(minutes=1)
    _add(store, "new", at=later)  # an arrival
    store.transition("b", JobState.CANCELLED, make_event("b", later))  # one leaves
    _add(store, "old", at=T0 - timedelta(days=1))  # stamped long ago: the count guard finds it
    assert {j.id for j in table.refresh(store, later)} == {"a", "new", "old"}

    latest = later + timedelta(minutes=1)
    store.save_plans(
        [
            (
                "a",
                make_plan(latest),
                [
                    JobEvent(
                        job_id="a",
                        at=latest,
                        kind="plan",
                        actor="t",
                        reason="p",
                        to_state=JobState.PLANNED,
                    )
                ],
            )
        ]
    )
    jobs = {j.id: j for j in table.refresh(store, latest)}
    assert jobs["a"].state is JobState.PLANNED  # a changed row is read again
    assert jobs["a"].spec.entrypoint == ""  # only what planning needs
    assert store.quarantine_job("new", "bad", make_event("new", latest, kind="quarantine"))
    assert "new" not in {j.id for j in table.refresh(store, latest + timedelta(seconds=1))}


class _ArrivalDuringRead:
    """The store, but a job arrives (committed by another connection) while the table's
    incremental read is under way: between its list of changed rows and its count."""

    def __init__(self, store: SqlStore, arrival: str, at: datetime) -> None:
        self.store, self.arrival, self.at = store, arrival, at
        self.full_reads = 0

    def planning_jobs(self, job_ids: Any = None) -> list[Any]:
        self.full_reads += 1
        return self.store.planning_jobs(job_ids)

    def planning_changes(self, since: datetime, current: Any) -> Any:
        def arriving(*row: Any) -> bool:
            if self.arrival:
                _add(self.store, self.arrival, at=self.at)
                self.arrival = ""
            return bool(current(*row))

        return self.store.planning_changes(since, arriving)


def test_an_arrival_during_the_incremental_read_waits_for_the_next_not_a_full_read(
    database_url: str,
) -> None:
    store = _store(database_url)
    _add(store, "a")
    table = JobTable()
    now = T0 + timedelta(minutes=1)
    assert {j.id for j in table.refresh(store, now)} == {"a"}

    later = now + timedelta(minutes=1)
    _add(store, "b", at=later)
    racing = _ArrivalDuringRead(store, "c", later)
    # One snapshot: "c" committed after it began, so neither its rows nor its count hold it.
    assert {j.id for j in table.refresh(racing, later)} == {"a", "b"}
    assert racing.full_reads == 0
    assert {j.id for j in table.refresh(racing, later + timedelta(seconds=1))} == {"a", "b", "c"}
    assert racing.full_reads == 0


def test_holdings_read_what_started_jobs_hold(database_url: str) -> None:
    """The occupancy read: per job in the states asked, the same region, GPUs, start, kind and
    duration a whole-row read gives, shares of a GPU included; other states left out."""
    store = _store(database_url)
    started = T0 + timedelta(minutes=3)
    specs = {
        "whole": make_spec(resources=Resources(gpus=2, cpus=4.0), expected_duration_s=900.0),
        "share": make_spec(
            kind=JobKind.DEPLOYMENT,
            resources=Resources(gpus=0.25, cpus=1.0),
            expected_duration_s=None,
            serve=ServeApp(import_path="app:main"),
        ),
        "queued": make_spec(resources=Resources(gpus=1, cpus=1.0)),
    }
    for job_id, spec in specs.items():
        _add(store, job_id, spec=spec)
    for job_id in ("whole", "share"):
        store.transition(
            job_id,
            JobState.DISPATCHED,
            make_event(job_id, started, to_state=JobState.DISPATCHED),
            region="eu-south",
            started_at=started,
        )
    held = store.holdings([JobState.DISPATCHED, JobState.RUNNING])
    rows = sorted(held, key=lambda h: h.gpus)
    assert len(rows) == 2
    for holding, job_id in zip(rows, ("share", "whole"), strict=True):
        job = store.get_job(job_id)
        assert holding.region == job.region == "eu-south"
        assert holding.gpus == job.spec.resources.gpus
        assert type(holding.gpus) is type(job.spec.resources.gpus)
        assert holding.started_at == job.started_at == started
        assert holding.kind is job.spec.kind
        assert holding.expected_duration_s == job.spec.expected_duration_s
