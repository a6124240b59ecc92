"""Deployment endpoints over the REST API: the worker's attempt token reports where its copy
answers, ``GET /v1/deployments/{id}/endpoint`` says where the deployment answers now, and a
move's new copy reports its own endpoint without taking over before its switch."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from scheduler.domain import JobEvent, JobState
from scheduler.domain.deployments import Move, MovePhase
from tests.integration.test_api import Api, dispatched, job_body, job_token
from tests.integration.test_api_hardening import api, assert_refused

__all__ = ["api"]  # the fixture, imported so pytest finds it here


def _deployment(api: Api) -> dict[str, Any]:
    response = api.http.post(
        "/v1/jobs",
        json=job_body(kind="deployment", expected_duration_s=None, max_delay_s=0),
        headers=api.as_(api.acme),
    )
    assert response.status_code == 201, response.text
    job: dict[str, Any] = response.json()
    api.service.plan_cycle()
    assert job["id"] in [j.id for j in api.service.ctx.store.claim_due(api.clock.now(), 100)]
    api.clock.advance(60)
    return job


def _post(api: Api, job: dict[str, Any], secret: str, endpoint: Any) -> Any:
    return api.http.post(
        f"/v1/jobs/{job['id']}/endpoint", json={"endpoint": endpoint}, headers=api.as_(secret)
    )


def _where(api: Api, job: dict[str, Any], secret: str) -> Any:
    return api.http.get(f"/v1/deployments/{job['id']}/endpoint", headers=api.as_(secret))


def test_the_attempt_token_records_the_endpoint_clients_read(api: Api) -> None:
    training = dispatched(api)
    job = _deployment(api)
    assert _where(api, job, api.acme).json()["endpoint"] is None
    token = job_token(api, job)

    first = _post(api, job, token, "http://10.1.2.3:8000/")
    assert first.status_code == 200, first.text
    assert first.json() == {
        "job_id": job["id"],
        "endpoint": "http://10.1.2.3:8000",
        "changed": True,
    }
    assert _post(api, job, token, "http://10.1.2.3:8000").json()["changed"] is False

    where = _where(api, job, api.acme).json()
    assert where["endpoint"] == "http://10.1.2.3:8000"
    assert where["state"] == "dispatched"
    assert where["region"] == api.service.ctx.store.get_job(job["id"]).region
    assert where["updated_at"] is not None
    assert where["moving_to"] is None
    shown = api.http.get(f"/v1/jobs/{job['id']}", headers=api.as_(api.acme)).json()
    assert shown["endpoint"] == "http://10.1.2.3:8000"
    assert shown["relocations"] == []
    # Another tenant cannot see it; a training job has no endpoint.
    assert_refused(_where(api, job, api.globex), 404)
    assert_refused(_where(api, training, api.acme), 422, "job_id")
    assert_refused(_post(api, training, api.admin, "http://10.1.2.3:9000"), 409)


def test_only_the_jobs_own_token_reports_a_well_formed_url(api: Api) -> None:
    job, other = _deployment(api), _deployment(api)
    token = job_token(api, job)
    assert_refused(_post(api, other, token, "http://10.1.2.3:8000"), 403)
    assert_refused(_post(api, job, api.acme, "http://10.1.2.3:8000"), 403)
    assert_refused(_post(api, job, "glt_not-a-token", "http://10.1.2.3:8000"), 401)
    for bad in (
        "ftp://10.1.2.3/x",
        "http://",
        "10.1.2.3:8000",
        "http://10.1.2.3:0",
        "http://10.1.2.3:99999",
        "http://10.1.2.3:8000/?q=1",
        "http://a b:80",
        "",
        "http://x/" + "a" * 600,
        12,
    ):
        assert_refused(_post(api, job, token, bad), 422)
    assert api.service.ctx.store.get_job(job["id"]).endpoint is None


def test_a_moves_new_copy_reports_its_own_endpoint_without_taking_over(api: Api) -> None:
    job = _deployment(api)
    store = api.service.ctx.store
    old_token = job_token(api, job)
    assert _post(api, job, old_token, "http://10.1.2.3:8000").status_code == 200
    now = api.clock.now()
    running = store.transition(
        job["id"],
        JobState.RUNNING,
        JobEvent(job_id=job["id"], at=now, kind="state", actor="ray", reason="running"),
    )
    move = Move(
        phase=MovePhase.STARTING,
        from_region=running.region or "",
        to_region="eu-south",
        old_attempt=1,
        old_submission_id=f"{job['id']}-1",
        new_attempt=2,
        new_submission_id=f"{job['id']}-2",
        started_at=now,
        health_deadline=now + timedelta(minutes=10),
        expected_saving_g=10.0,
        expected_saving_pct=20.0,
        stay_g=50.0,
        move_g=40.0,
        horizon_s=8 * 3600.0,
    )
    start = JobEvent(job_id=job["id"], at=now, kind="state", actor="scheduler", reason="move")
    assert store.start_move(job["id"], move, start)
    assert not store.start_move(job["id"], move, start)  # once
    new_token = job_token(api, job)  # the job's attempt is now the new copy's

    assert _post(api, job, new_token, "http://10.9.9.9:8001").status_code == 200
    where = _where(api, job, api.acme).json()
    assert (where["endpoint"], where["state"], where["moving_to"]) == (
        "http://10.1.2.3:8000",
        "relocating",
        "eu-south",
    )
    since = api.clock.now() - timedelta(days=1)
    assert store.moving_jobs(since) == [(store.get_job(job["id"]), "http://10.9.9.9:8001")]
    # The old copy still serves: its token still works, and still moves the endpoint.
    assert _post(api, job, old_token, "http://10.1.2.3:8002").status_code == 200
    assert _where(api, job, api.acme).json()["endpoint"] == "http://10.1.2.3:8002"

    switched = Move(**{**_fields(move), "phase": MovePhase.DRAINING, "switched_at": now})
    assert store.save_move(job["id"], move, switched, [])
    after = store.get_job(job["id"])
    assert (after.endpoint, after.region, after.submission_id) == (
        "http://10.9.9.9:8001",
        "eu-south",
        f"{job['id']}-2",
    )
    # Switched: the old copy no longer serves, so its report is refused; the new one's lands.
    assert_refused(_post(api, job, old_token, "http://10.1.2.3:8003"), 409)
    assert _post(api, job, new_token, "http://10.9.9.9:8004").status_code == 200
    assert store.get_job(job["id"]).endpoint == "http://10.9.9.9:8004"


def _fields(move: Move) -> dict[str, Any]:
    return {name: getattr(move, name) for name in Move.__dataclass_fields__}
