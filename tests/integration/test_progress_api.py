"""``POST /v1/jobs/{id}/progress``: only the job's own attempt token (or an admin) reports, a
repeat is idempotent, a lower total is a 409, the unit must be the job kind's."""

from __future__ import annotations

from typing import Any

from scheduler.domain import JobState
from scheduler.domain.energy import ATTEMPT_GRACE_S
from scheduler.domain.progress import JobProgress
from tests.integration.test_api import Api, dispatched, job_body, job_token
from tests.integration.test_api_hardening import _finish, api, assert_refused

__all__ = ["api"]  # the fixture, imported so pytest finds it here


def _post(api: Api, job: dict[str, Any], secret: str, **body: Any) -> Any:
    return api.http.post(f"/v1/jobs/{job['id']}/progress", json=body, headers=api.as_(secret))


def _stored(api: Api, job: dict[str, Any]) -> JobProgress | None:
    return api.service.ctx.store.job_progress([job["id"]]).get(job["id"])


def test_the_attempt_token_reports_a_growing_total_idempotently(api: Api) -> None:
    job = dispatched(api)
    token = job_token(api, job)
    first = _post(api, job, token, attempt=1, units=100)
    assert first.status_code == 200, first.text
    assert first.json() == {
        "job_id": job["id"],
        "attempt": 1,
        "units": 100.0,
        "unit": "steps",
        "changed": True,
    }
    assert _post(api, job, token, attempt=1, units=100).json()["changed"] is False
    assert _post(api, job, token, attempt=1, units=160, unit="steps").json()["changed"] is True
    assert_refused(_post(api, job, token, attempt=1, units=150), 409)
    assert _stored(api, job) == JobProgress(job_id=job["id"], attempt=1, units=160, unit="steps")


def test_only_the_jobs_own_attempt_token_or_an_admin_may_report(api: Api) -> None:
    mine, other = dispatched(api), api.submit(api.acme)
    token = job_token(api, mine)
    assert_refused(_post(api, other, token, attempt=1, units=5), 403)
    assert_refused(_post(api, mine, token, attempt=2, units=5), 403)  # another attempt
    assert_refused(_post(api, mine, api.acme, attempt=1, units=5), 403)  # the owner's user token
    assert_refused(_post(api, mine, "glt_not-a-token", attempt=1, units=5), 401)
    assert _stored(api, mine) is None
    assert _post(api, mine, api.admin, attempt=1, units=5).status_code == 200
    assert _stored(api, other) is None


def test_bad_totals_and_units_are_422(api: Api) -> None:
    job = dispatched(api)
    token = job_token(api, job)
    url = f"/v1/jobs/{job['id']}/progress"
    for body, field in (
        ({"attempt": 1, "units": -1}, "units"),
        ({"attempt": 1, "units": 1e16}, "units"),
        ({"attempt": 0, "units": 1}, "attempt"),
        ({"attempt": 1, "units": 1, "unit": "tokens"}, "unit"),
        ({"attempt": 1}, "units"),
    ):
        assert_refused(api.http.post(url, json=body, headers=api.as_(token)), 422, field)
    for literal in ("NaN", "Infinity"):
        raw = api.http.post(
            url,
            content=f'{{"attempt": 1, "units": {literal}}}',
            headers={**api.as_(token), "Content-Type": "application/json"},
        )
        assert_refused(raw, 422)
    # A training job counts steps: "requests" is a valid unit, not this job's.
    body = assert_refused(_post(api, job, token, attempt=1, units=1, unit="requests"), 422)
    assert "steps" in str(body["detail"])
    assert _stored(api, job) is None


def test_a_deployment_counts_requests(api: Api) -> None:
    response = api.http.post(
        "/v1/jobs",
        json=job_body(kind="deployment", expected_duration_s=None, max_delay_s=0),
        headers=api.as_(api.acme),
    )
    assert response.status_code == 201, response.text
    job = response.json()
    api.service.plan_cycle()
    assert job["id"] in [j.id for j in api.service.ctx.store.claim_due(api.clock.now(), 100)]
    api.clock.advance(60)
    ok = _post(api, job, job_token(api, job), attempt=1, units=1234)
    assert ok.status_code == 200, ok.text
    assert ok.json()["unit"] == "requests"


def test_an_attempt_that_never_ran_or_ended_long_ago_takes_no_progress(api: Api) -> None:
    queued = api.submit(api.acme)
    assert_refused(_post(api, queued, api.admin, attempt=1, units=1), 409)
    job = dispatched(api)
    token = job_token(api, job)
    _finish(api, job, JobState.SUCCEEDED)
    api.clock.advance(ATTEMPT_GRACE_S - 1)  # the runner's final report still arrives
    assert _post(api, job, token, attempt=1, units=10).status_code == 200
    api.clock.advance(2)
    assert_refused(_post(api, job, token, attempt=1, units=20), 401)  # the token expired
    assert_refused(_post(api, job, api.admin, attempt=1, units=20), 409)
    assert _stored(api, job) == JobProgress(job_id=job["id"], attempt=1, units=10, unit="steps")
