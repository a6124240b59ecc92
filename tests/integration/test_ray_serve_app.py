"""A deployment run as a Ray Serve application, end to end on a real local Ray head (declared
with two GPUs): submitted through the API with ``serve: {import_path, config}`` and a 0.25-GPU
share, planned, deployed through Serve's REST API on the region's cluster (its proxy on a free
port), RUNNING in Greenlight, answering over HTTP with gzip and a response cache observed, and
removed from Serve when the job is cancelled."""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from fastapi.testclient import TestClient

from scheduler.api.app import create_app
from scheduler.bootstrap import RayEndpoint, build_service
from scheduler.config import load_settings
from scheduler.dispatch.local_ray import LocalRayHead, free_port
from scheduler.domain import JobState, Role
from workers.examples.model import INPUT_DIM

pytestmark = pytest.mark.ray

WAIT_S = 180.0  # a guard against hanging (Serve starts its controller and proxy), not a timing
SERVE = {
    "import_path": "workers.examples.serve_app:app",
    "config": {
        "deployments": [
            {
                "name": "MlpService",
                "num_replicas": 1,
                "ray_actor_options": {"num_cpus": 0.1, "num_gpus": 0.25},
            }
        ]
    },
}


@pytest.fixture(scope="module")
def gpu_head() -> Iterator[LocalRayHead]:
    head = LocalRayHead(num_cpus=2, num_gpus=2, memory_mb=3072, object_store_memory_mb=128)
    head.start()
    try:
        yield head
    finally:
        head.stop()


def _until(what: str, check: Any) -> Any:
    deadline = time.monotonic() + WAIT_S
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(1.0)


def test_serve_application_deploys_answers_with_gzip_and_cache_and_stops(
    gpu_head: LocalRayHead, sqlite_url: str
) -> None:
    port = free_port()
    settings = load_settings(
        database_url=sqlite_url,
        regions=[{"name": "eu-central", "grid_zone": "DE", "provider": "replay", "gpus": 1}],
        serve_http_host="127.0.0.1",
        serve_http_port=port,
    )
    service = build_service(settings, ray=RayEndpoint(gpu_head.dashboard_url))
    service.refresh_forecasts()
    secret, _ = service.create_token(tenant="acme", role=Role.USER)
    headers = {"Authorization": f"Bearer {secret}"}
    body = {
        "name": "mlp-serve",
        "kind": "deployment",
        "entrypoint": "serve workers.examples.serve_app:app",
        "home_region": "eu-central",
        "policy": "now",
        "resources": {"gpus": 0.25, "cpus": 0.1},
        "serve": SERVE,
    }
    with TestClient(create_app(service)) as http:
        too_few = http.post("/v1/jobs", json={**body, "resources": {"gpus": 0.2}}, headers=headers)
        assert too_few.status_code == 422, too_few.text
        assert "ask for 0.25 GPUs in all" in too_few.text
        created = http.post("/v1/jobs", json=body, headers=headers)
        assert created.status_code == 201, created.text
        job_id = created.json()["id"]
        assert created.json()["serve"] == SERVE

        service.plan_cycle()
        assert service.dispatch_due() == [job_id]
        sid = service.ctx.store.get_job(job_id).submission_id
        assert sid is not None
        url = f"http://127.0.0.1:{port}/{sid}"

        def running() -> bool:
            service.reconcile()
            return service.ctx.store.get_job(job_id).state is JobState.RUNNING

        _until("the job to run", running)
        shown = http.get(f"/v1/jobs/{job_id}", headers=headers).json()
        assert shown["endpoint"] == url  # recorded at dispatch: Serve's route for this run
        _until("the proxy to answer", lambda: _get(f"{url}/healthz") == 200)
        listed = requests.get(f"{gpu_head.dashboard_url}/api/serve/applications/", timeout=30)
        app = listed.json()["applications"][sid]
        assert app["status"] == "RUNNING"
        deployed_env = app["deployed_app_config"]["runtime_env"]["env_vars"]

        rows = [[0.01 * ((i + r) % 7) for i in range(INPUT_DIM)] for r in range(32)]
        payload = json.dumps({"inputs": rows})  # 32 outputs: worth gzipping
        first = requests.post(f"{url}/predict", data=payload, timeout=30)
        assert first.status_code == 200, first.text
        assert first.headers["X-Cache"] == "miss"
        assert len(first.json()["outputs"]) == 32
        again = requests.post(
            f"{url}/predict", data=payload, headers={"Accept-Encoding": "gzip"}, timeout=30
        )
        assert again.headers["X-Cache"] == "hit"
        assert again.headers["Content-Encoding"] == "gzip"
        assert again.json() == first.json()  # requests decodes gzip: the same answer
        raw = requests.post(
            f"{url}/predict", data=payload, headers={"Accept-Encoding": "gzip"}, stream=True
        ).raw.read(decode_content=False)
        assert json.loads(gzip.decompress(raw)) == first.json()
        plain = requests.post(
            f"{url}/predict", data=payload, headers={"Accept-Encoding": "identity"}, timeout=30
        )
        assert "Content-Encoding" not in plain.headers
        stats = requests.get(f"{url}/stats", timeout=30).json()
        assert stats == {"requests": 4, "hits": 3, "misses": 1}

        cancelled = http.post(f"/v1/jobs/{job_id}/cancel", headers=headers)
        assert cancelled.status_code == 200, cancelled.text

    apps = requests.get(f"{gpu_head.dashboard_url}/api/serve/applications/", timeout=30).json()
    assert sid not in (apps.get("applications") or {})
    assert deployed_env["GREENLIGHT_JOB_ID"] == job_id
    assert "GREENLIGHT_TOKEN" not in deployed_env  # Serve shows configs to dashboard readers
    _until("the route to go", lambda: _get(f"{url}/healthz") in (404, None))


def _get(url: str) -> int | None:
    try:
        return requests.get(url, timeout=5).status_code
    except requests.RequestException:
        return None
