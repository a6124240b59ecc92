"""Admission at scale through the API, on SQLite and PostgreSQL.

* A submit's SQL does not depend on the queue: the same few statements with 10 or 10,000
  jobs queued, none of them reading the queue (statements counted on the engine).
* A submit never plans; the capacity ledger the cycle leaves refuses what cannot fit.
* ``POST /v1/jobs/batch`` is all or none, with errors by position; groups list and cancel.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from scheduler.api.app import create_app
from scheduler.bootstrap import build_service
from scheduler.config import load_settings
from scheduler.domain import Job, JobEvent, JobKind, JobSpec, JobState, Resources, Role
from scheduler.service import GreenlightService
from scheduler.store.sql import SqlStore
from tests.fakes.clock import FakeClock

T0 = datetime(2023, 3, 1, 6, tzinfo=UTC)


@dataclass
class Api:
    http: TestClient
    service: GreenlightService
    token: str
    admin: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    @property
    def store(self) -> SqlStore:
        store = self.service.ctx.store
        assert isinstance(store, SqlStore)
        return store


@pytest.fixture
def api(database_url: str) -> Iterator[Api]:
    service = build_service(load_settings(database_url=database_url), clock=FakeClock(T0))
    token = service.create_token(tenant="acme", role=Role.USER)[0]
    admin = service.create_token(tenant="ops", role=Role.ADMIN)[0]
    with TestClient(create_app(service)) as http:
        yield Api(http=http, service=service, token=token, admin=admin)


def body(**overrides: Any) -> dict[str, Any]:
    job = {
        "name": "train",
        "entrypoint": "python train.py",
        "home_region": "eu-central",
        "expected_duration_s": 3600,
        "max_delay_s": 6 * 3600,
    }
    job.update(overrides)
    return job


def queue(api: Api, n: int, at: datetime = T0) -> None:
    """``n`` pending jobs created ``at``, loaded through the store in one bulk insert."""
    spec = JobSpec(
        tenant="acme",
        name="q",
        kind=JobKind.TRAINING,
        entrypoint="true",
        home_region="eu-central",
        expected_duration_s=3600.0,
        max_delay_s=48 * 3600.0,
        allowed_regions=("eu-central",),
        resources=Resources(gpus=0),
        expected_power_w=100.0,
    )
    new = []
    for _ in range(n):
        job = Job(
            id=f"q-{uuid.uuid4().hex[:16]}",
            spec=spec,
            state=JobState.PENDING,
            created_at=at,
            updated_at=at,
        )
        new.append(
            (
                job,
                JobEvent(
                    job_id=job.id,
                    at=at,
                    kind="state",
                    actor="test",
                    reason="queued",
                    to_state=JobState.PENDING,
                ),
            )
        )
    api.store.add_jobs(new)


def submit_statements(api: Api) -> list[str]:
    """The SQL one ``POST /v1/jobs`` issues (the ledger warm: a cycle has run), less the token
    lookup and the BEGIN of its transaction, which the token cache skips or not depending on
    how long ago the last one was (a 10,000-job plan cycle on a loaded machine outlasts it)."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    engine = api.store.engine
    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        response = api.http.post("/v1/jobs", json=body(), headers=api.headers)
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)
    assert response.status_code == 201, response.text
    lookup = {i for i, s in enumerate(seen) if "api_tokens" in s}
    lookup |= {i - 1 for i in lookup if i > 0 and seen[i - 1].strip().upper() == "BEGIN"}
    return [s for i, s in enumerate(seen) if i not in lookup]


@pytest.mark.timeout(300)
def test_a_submit_costs_the_same_sql_with_10_or_10000_jobs_queued(api: Api) -> None:
    queue(api, 10)
    api.service.plan_cycle()
    assert api.service.ctx.admission is not None
    small = submit_statements(api)
    queue(api, 9_990)
    api.service.plan_cycle()
    large = submit_statements(api)
    assert len(small) == len(large) <= 6, large
    for statement in large:
        # the job and its event inserted (one statement on PostgreSQL): nothing reads the jobs table
        assert not (statement.lstrip().upper().startswith("SELECT") and "FROM jobs" in statement)
    assert sum("INSERT INTO jobs" in s for s in large) == 1
    assert sum("INSERT INTO job_events" in s for s in large) == 1


def test_a_submit_never_plans_and_wakes_the_planner(api: Api) -> None:
    api.service.ctx.wake_planner.clear()
    job = api.http.post("/v1/jobs", json=body(), headers=api.headers).json()
    assert job["state"] == "pending"
    assert job["plan"] is None
    assert api.service.ctx.wake_planner.is_set()
    api.service.plan_cycle()
    assert api.service.get_job(job["id"], api.service.authenticate(api.token)).plan is not None


def test_capacity_held_by_running_jobs_refuses_a_tight_deadline(api: Api) -> None:
    tight = body(resources={"gpus": 8}, allowed_regions=["eu-central"], max_delay_s=0)
    first = api.http.post("/v1/jobs", json=tight, headers=api.headers)
    assert first.status_code == 201, first.text
    api.service.plan_cycle()
    claimed = api.store.claim_due(T0, limit=10)
    assert [j.id for j in claimed] == [first.json()["id"]]
    api.service.plan_cycle()  # the ledger now holds eu-central's 8 GPUs for an hour
    refused = api.http.post("/v1/jobs", json=tight, headers=api.headers)
    assert refused.status_code == 422, refused.text
    detail = refused.json()["detail"][0]
    assert detail["loc"] == ["body", "deadline"]
    assert "capacity" in detail["msg"]
    later = body(resources={"gpus": 8}, allowed_regions=["eu-central"], max_delay_s=7200)
    assert api.http.post("/v1/jobs", json=later, headers=api.headers).status_code == 201


def test_a_batch_is_all_or_none_with_errors_by_position(api: Api) -> None:
    jobs = [body(name=f"sweep-{i}") for i in range(10)]
    jobs[3]["home_region"] = "atlantis"  # domain rules: every refused spec is listed
    jobs[7]["allowed_regions"] = ["eu-south"]
    response = api.http.post("/v1/jobs/batch", json={"jobs": jobs}, headers=api.headers)
    assert response.status_code == 422, response.text
    errors = {(e["index"], e["field"]) for e in response.json()["detail"]}
    assert errors == {(3, "home_region"), (7, "home_region")}
    assert all(e["message"] for e in response.json()["detail"])
    jobs[3], jobs[7] = body(), body()
    jobs[5]["expected_duration_s"] = -1  # schema rules answer in the same shape
    response = api.http.post("/v1/jobs/batch", json={"jobs": jobs}, headers=api.headers)
    assert response.status_code == 422, response.text
    assert [(e["index"], e["field"]) for e in response.json()["detail"]] == [
        (5, "expected_duration_s")
    ]
    listed = api.http.get("/v1/jobs", headers=api.headers).json()
    assert listed["count"] == 0  # nothing of the batch was stored


def test_a_batch_shares_a_group_that_list_and_cancel_filter_on(api: Api) -> None:
    jobs = [body(name=f"sweep-{i}") for i in range(120)]
    response = api.http.post("/v1/jobs/batch", json={"jobs": jobs}, headers=api.headers)
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["count"] == 120
    group = created["group_id"]
    other = api.http.post("/v1/jobs", json=body(), headers=api.headers).json()
    page = api.http.get(
        "/v1/jobs", params={"group_id": group, "limit": 1000}, headers=api.headers
    ).json()
    assert {j["id"] for j in page["data"]} == set(created["ids"])
    assert {j["group_id"] for j in page["data"]} == {group}
    events = api.http.get(f"/v1/jobs/{created['ids'][0]}/events", headers=api.headers).json()
    assert [e["to_state"] for e in events["data"]] == ["pending"]
    # another tenant cancels nothing of it
    globex = api.service.create_token(tenant="globex", role=Role.USER)[0]
    none = api.http.post(
        "/v1/jobs/cancel", params={"group_id": group}, headers={"Authorization": f"Bearer {globex}"}
    ).json()
    assert none["cancelled"] == []
    cancelled = api.http.post(
        "/v1/jobs/cancel", params={"group_id": group}, headers=api.headers
    ).json()
    assert sorted(cancelled["cancelled"]) == sorted(created["ids"])
    states = {
        j["state"]
        for j in api.http.get(
            "/v1/jobs", params={"group_id": group, "limit": 1000}, headers=api.headers
        ).json()["data"]
    }
    assert states == {"cancelled"}
    assert api.http.get(f"/v1/jobs/{other['id']}", headers=api.headers).json()["state"] == (
        "pending"
    )


def test_keyset_pages_are_stable_while_jobs_arrive(api: Api) -> None:
    clock = api.service.ctx.clock
    assert isinstance(clock, FakeClock)
    before: list[str] = []
    for _ in range(25):
        before.append(api.http.post("/v1/jobs", json=body(), headers=api.headers).json()["id"])
        clock.advance(1)
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 10}
        if cursor:
            params["cursor"] = cursor
        page = api.http.get("/v1/jobs", params=params, headers=api.headers).json()
        assert page["count"] is None if cursor else page["count"] >= 25
        seen.extend(j["id"] for j in page["data"])
        pages += 1
        # jobs arrive between pages, some in the very same second as the last one seen
        for _ in range(3):
            api.http.post("/v1/jobs", json=body(), headers=api.headers)
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(before))  # every job once, newest first, none of the new
    assert pages == 3
    bad = api.http.get("/v1/jobs", params={"cursor": "not-a-cursor"}, headers=api.headers)
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"] == ["body", "cursor"]


def test_events_of_finished_jobs_are_pruned_after_their_retention(api: Api) -> None:
    job_id = api.http.post("/v1/jobs", json=body(), headers=api.headers).json()["id"]
    principal = api.service.authenticate(api.token)
    api.service.cancel(job_id, principal)
    store = api.store
    assert len(store.events(job_id)) == 2
    assert store.prune_events(T0) == 0  # finished_at is None for a never-started cancel
    with store.engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE jobs SET finished_at = :at WHERE id = :id"),
            {"at": T0 - timedelta(days=40), "id": job_id},
        )
    assert store.prune_events(T0 - timedelta(days=30)) == 2
    assert store.events(job_id) == []
    assert store.get_job(job_id).state is JobState.CANCELLED


def test_keyset_pages_hold_while_another_thread_inserts(api: Api) -> None:
    """Pages read while a writer inserts jobs as fast as it can list every job that existed
    before the first page exactly once, in order (new jobs are created later, as a clock
    makes them)."""
    import threading

    queue(api, 300)
    before, _ = api.store.list_jobs(limit=1000, count=False)
    stop = threading.Event()

    def write() -> None:
        while not stop.is_set():
            queue(api, 20, at=T0 + timedelta(hours=1))

    first, _ = api.store.list_jobs(limit=37, count=False)  # the first page, then the writer
    seen: list[str] = [j.id for j in first]
    after: tuple[datetime, str] | None = (first[-1].created_at, first[-1].id)
    writer = threading.Thread(target=write)
    writer.start()
    try:
        while True:
            page, _ = api.store.list_jobs(limit=37, after=after, count=False)
            seen.extend(j.id for j in page)
            if len(page) < 37:
                break
            after = (page[-1].created_at, page[-1].id)
    finally:
        stop.set()
        writer.join()
    assert seen == [j.id for j in before]
    assert sum(api.store.count_by_state().values()) > 300  # the writer did write meanwhile


def test_before_the_first_cycle_submits_are_admitted_on_the_pure_checks(api: Api) -> None:
    """After a restart the ledger is empty until a cycle runs: a job the capacity cannot take
    is admitted then (the cycle decides), refused once the cycle has rebuilt the ledger."""
    tight = body(resources={"gpus": 8}, allowed_regions=["eu-central"], max_delay_s=0)
    first = api.http.post("/v1/jobs", json=tight, headers=api.headers).json()
    api.service.plan_cycle()
    assert [j.id for j in api.store.claim_due(T0, limit=10)] == [first["id"]]
    api.service.ctx.admission = None  # as after a restart
    assert api.http.post("/v1/jobs", json=tight, headers=api.headers).status_code == 201
    api.service.plan_cycle()
    assert api.http.post("/v1/jobs", json=tight, headers=api.headers).status_code == 422


def test_an_offset_page_counts_up_to_its_limit(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    from scheduler.service import jobs as job_service

    queue(api, 30)
    page = api.http.get("/v1/jobs", headers=api.headers).json()
    assert (page["count"], page["count_capped"]) == (30, False)
    monkeypatch.setattr(job_service, "COUNT_LIMIT", 25)  # the same rule at a testable size
    page = api.http.get("/v1/jobs", params={"limit": 10}, headers=api.headers).json()
    assert (page["count"], page["count_capped"], len(page["data"])) == (25, True, 10)
