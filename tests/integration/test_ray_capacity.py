"""Capacity is what Ray has: on the embedded default (three regions configured with 8 GPUs
each) over a Ray without GPUs, every region offers 0 GPUs and a GPU job is refused at submit
with a 422 that says why, instead of waiting in ``dispatched`` for a GPU that never comes."""

from __future__ import annotations

import dataclasses
import time

import pytest
from fastapi.testclient import TestClient

from scheduler.api.app import create_app
from scheduler.bootstrap import RayEndpoint, build_service
from scheduler.config import load_settings
from scheduler.dispatch.local_ray import LocalRayHead
from scheduler.domain import JobState, Principal, Role
from scheduler.periodic import start_periodic

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
    cycles = start_periodic(service, settings)
    try:  # and it is read again every cycle
        assert cycles.scheduler.get_job("read-capacity") is not None
    finally:
        cycles.shutdown(wait=False)
    offered = regions["data"] if isinstance(regions, dict) else regions
    assert {r["name"]: r["gpus"] for r in offered} == {"eu-central": 0, "eu-south": 0, "us-west": 0}


def test_a_job_ray_cannot_place_is_failed_with_a_reason_and_an_event(
    ray_cluster: LocalRayHead,
    sqlite_url: str,
) -> None:
    """More CPUs than any node has: Ray keeps it PENDING; past the pending timeout the service
    stops it and fails it (no retries left), saying why in the job and in its events."""
    settings = load_settings(database_url=sqlite_url)
    service = build_service(settings, ray=RayEndpoint(ray_cluster.dashboard_url))
    service.ctx.config = dataclasses.replace(service.ctx.config, pending_timeout_s=2.0)
    service.refresh_forecasts()
    secret, _ = service.create_token(tenant="acme", role=Role.USER)
    body = {
        "name": "huge",
        "entrypoint": "echo never",
        "home_region": "eu-central",
        "expected_duration_s": 600,
        "max_delay_s": 600,
        "policy": "now",
        "resources": {"gpus": 0, "cpus": 16},
    }
    with TestClient(create_app(service)) as http:
        created = http.post("/v1/jobs", json=body, headers={"Authorization": f"Bearer {secret}"})
    assert created.status_code == 201, created.text
    job_id = created.json()["id"]
    admin = Principal(tenant="ops", role=Role.ADMIN, token_id="t")

    deadline = time.monotonic() + 90
    while (job := service.get_job(job_id, admin)).state is not JobState.FAILED:
        assert time.monotonic() < deadline, f"still {job.state}"
        service.plan_cycle()
        service.dispatch_due()
        service.reconcile()
        time.sleep(0.5)

    assert "pending on the cluster" in (job.message or "")
    reasons = [e.reason for e in service.events(job_id, admin)]
    assert any("pending on the cluster" in r for r in reasons), reasons
