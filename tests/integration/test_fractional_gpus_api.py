"""Shares of a GPU through the REST API on a real SQLite file: a deployment's 0.25 is accepted,
stored and read back as it was, and packed by the plan cycle; shares that are not multiples of
1/10,000, counts above one that are not whole, and shares for training jobs are 422s naming
``resources.gpus`` with a reason."""

from __future__ import annotations

from typing import Any

import pytest

from scheduler.domain import JobState
from tests.integration.test_api import Api, api, field_of, job_body

__all__ = ["api"]  # the fixture, shared with the API tests


def deployment(gpus: float, **overrides: Any) -> dict[str, Any]:
    return job_body(
        name="svc",
        kind="deployment",
        entrypoint="python -m workers.examples.serve_model",
        expected_duration_s=None,
        max_delay_s=None,
        resources={"gpus": gpus, "cpus": 1},
        **overrides,
    )


def test_a_quarter_gpu_deployment_is_accepted_and_read_back(api: Api) -> None:
    response = api.http.post("/v1/jobs", json=deployment(0.25), headers=api.as_(api.acme))
    assert response.status_code == 201, response.text
    job_id = response.json()["id"]
    fetched = api.http.get(f"/v1/jobs/{job_id}", headers=api.as_(api.acme)).json()
    assert fetched["resources"]["gpus"] == 0.25
    whole = api.submit(api.acme, resources={"gpus": 2})
    assert whole["resources"]["gpus"] == 2
    assert isinstance(whole["resources"]["gpus"], int)  # a whole count stays an integer


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (deployment(0.33333), "multiple of 1/10,000"),
        (deployment(1.5), "above 1 must be a whole number"),
        (job_body(resources={"gpus": 0.5}), "for deployments only"),
    ],
    ids=["not-a-ray-unit", "one-and-a-half", "training-share"],
)
def test_bad_shares_are_a_clear_422(api: Api, body: dict[str, Any], reason: str) -> None:
    response = api.http.post("/v1/jobs", json=body, headers=api.as_(api.acme))
    assert response.status_code == 422, response.text
    (item,) = response.json()["detail"]
    assert field_of(item) == "resources.gpus"
    assert reason in item["msg"]
    assert api.http.get("/v1/jobs", headers=api.as_(api.acme)).json()["count"] == 0


def test_the_plan_cycle_packs_shares_into_one_region(api: Api) -> None:
    assert set(api.service.pull_forecasts().values()) == {"ok"}
    ids = [
        api.http.post(
            "/v1/jobs",
            json=deployment(0.25, allowed_regions=["eu-central"]),
            headers=api.as_(api.acme),
        ).json()["id"]
        for _ in range(4)
    ]
    decision = api.service.plan_cycle()
    assert {decision.plans[i].region for i in ids} == {"eu-central"}
    for job_id in ids:
        job = api.service.ctx.store.get_job(job_id)
        assert job.state is JobState.PLANNED
        assert job.spec.resources.gpus == 0.25
