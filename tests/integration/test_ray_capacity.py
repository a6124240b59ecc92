"""Capacity is what Ray has: on the embedded default (three regions configured with 8 GPUs
each) over a Ray without GPUs, every region offers 0 GPUs and a GPU job is refused at submit
with a 422 that says why, instead of waiting in ``dispatched`` for a GPU that never comes."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from scheduler.api.app import create_app
from scheduler.bootstrap import RayEndpoint, build_service
from scheduler.config import load_settings
from scheduler.dispatch.local_ray import LocalRayHead
from scheduler.domain import Role

pytestmark = pytest.mark.ray


def test_gpu_job_on_a_cluster_without_gpus_is_refused_with_a_reason(
    ray_cluster: LocalRayHead,
    sqlite_url: str,
) -> None:
    settings = load_settings(database_url=sqlite_url)
    assert {r.gpus for r in settings.regions} == {8}  # what the embedded default configures
    service = build_service(settings, ray=RayEndpoint(ray_cluster.dashboard_url))
    secret, _ = service.create_token(tenant="acme", role=Role.USER)
    body = {
        "name": "train",
        "entrypoint": "python train.py",
        "home_region": "eu-central",
        "expected_duration_s": 3600,
        "max_delay_s": 6 * 3600,
    }
    with TestClient(create_app(service)) as http:
        headers = {"Authorization": f"Bearer {secret}"}
        refused = http.post("/v1/jobs", json={**body, "resources": {"gpus": 1}}, headers=headers)
        accepted = http.post("/v1/jobs", json={**body, "resources": {"gpus": 0}}, headers=headers)
        regions = http.get("/v1/regions", headers=headers).json()

    assert refused.status_code == 422, refused.text
    assert "1 GPUs" in refused.text
    assert "has 0" in refused.text
    assert accepted.status_code == 201, accepted.text
    offered = regions["data"] if isinstance(regions, dict) else regions
    assert {r["name"]: r["gpus"] for r in offered} == {"eu-central": 0, "eu-south": 0, "us-west": 0}
