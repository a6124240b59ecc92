"""Shares of a GPU on a real local Ray head declared with two GPUs (``--num-gpus 2``: Ray takes
a declared count without hardware). The region is configured with one GPU: the planner packs two
0.5-GPU deployments onto it and holds back a third, and Ray runs the two side by side on the same
device (each entrypoint sees the same ``CUDA_VISIBLE_DEVICES``), with one declared GPU left."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from ray.job_submission import JobStatus, JobSubmissionClient

from scheduler.api.app import create_app
from scheduler.bootstrap import RayEndpoint, build_service
from scheduler.config import load_settings
from scheduler.dispatch.local_ray import LocalRayHead
from scheduler.domain import JobState, Role

pytestmark = pytest.mark.ray

WAIT_S = 120.0  # a guard against hanging, not a performance assertion
SHOW_DEVICE = (
    "python -c \"import os, time; print('device=' + os.environ.get('CUDA_VISIBLE_DEVICES', "
    "'none'), flush=True); time.sleep(600)\""
)


@pytest.fixture(scope="module")
def gpu_head() -> Iterator[LocalRayHead]:
    head = LocalRayHead(num_cpus=2, num_gpus=2, memory_mb=2048, object_store_memory_mb=128)
    head.start()
    try:
        yield head
    finally:
        head.stop()


def test_two_half_gpu_deployments_share_one_gpu(gpu_head: LocalRayHead, sqlite_url: str) -> None:
    settings = load_settings(
        database_url=sqlite_url,
        regions=[{"name": "eu-central", "grid_zone": "DE", "provider": "replay", "gpus": 1}],
    )
    service = build_service(settings, ray=RayEndpoint(gpu_head.dashboard_url))
    service.refresh_forecasts()
    secret, _ = service.create_token(tenant="acme", role=Role.USER)
    body = {
        "kind": "deployment",
        "entrypoint": SHOW_DEVICE,
        "home_region": "eu-central",
        "policy": "now",
        "resources": {"gpus": 0.5, "cpus": 0.1},
    }
    with TestClient(create_app(service)) as http:
        ids = []
        for name in ("svc-a", "svc-b", "svc-c"):
            created = http.post(
                "/v1/jobs",
                json={**body, "name": name},
                headers={"Authorization": f"Bearer {secret}"},
            )
            assert created.status_code == 201, created.text
            ids.append(created.json()["id"])
    ray = JobSubmissionClient(gpu_head.dashboard_url)
    try:
        decision = service.plan_cycle()
        placed = [i for i in ids if i in decision.plans]
        (waiting,) = [i for i in ids if i not in decision.plans]
        assert len(placed) == 2
        assert "no allowed region has room for a 0.5 GPU share" in decision.notes[waiting]
        assert sorted(service.dispatch_due()) == sorted(placed)

        sids = [service.ctx.store.get_job(i).submission_id for i in placed]
        deadline = time.monotonic() + WAIT_S
        logs: dict[str, str] = {}
        while len(logs) < 2:
            for sid in sids:
                assert sid is not None
                status = ray.get_job_status(sid)
                assert status not in {JobStatus.FAILED, JobStatus.STOPPED}, ray.get_job_logs(sid)
                text = ray.get_job_logs(sid)
                if status is JobStatus.RUNNING and "device=" in text:
                    logs[sid] = text
            assert time.monotonic() < deadline, f"not both running: {logs}"
            time.sleep(0.5)
        devices = {text.split("device=")[1].split()[0] for text in logs.values()}
        assert len(devices) == 1, devices  # one GPU, shared
        assert devices != {"none"}
        service.reconcile()
        states = {i: service.ctx.store.get_job(i).state for i in ids}
        assert {states[i] for i in placed} <= {JobState.DISPATCHED, JobState.RUNNING}
        assert states[waiting] is JobState.PENDING
    finally:
        for i in ids:
            sid = service.ctx.store.get_job(i).submission_id
            if sid is not None:
                ray.stop_job(sid)
