"""A deployment run as a Ray Serve application follows the greener region, on the real two-region
Ray cluster of ``test_relocation_ray`` (``gl-a`` the head's node group, ``gl-b`` a second node's):
the new copy is a second Serve application at its own route prefix, its replicas on the target's
nodes; a client that follows ``GET /v1/deployments/{id}/endpoint`` sees no failed request; the
old application is removed from Serve and the new one serves on; each copy's energy estimate is
written under its own attempt, in the region it ran in, the old one's up to its stop.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from ray.util.state import list_actors, list_nodes

from scheduler.dispatch.local_ray import LocalRayHead, free_port
from scheduler.domain import JobState
from scheduler.domain.deployments import COPY_STOPPED
from scheduler.domain.energy import MeterMethod
from scheduler.domain.runs import RunStatus
from tests.integration.test_relocation_ray import (
    A_LABEL,
    ADMIN,
    B_LABEL,
    A,
    B,
    Client,
    Live,
    cluster,
    open_live,
)

pytestmark = pytest.mark.ray
__all__ = ["cluster"]  # the two-region cluster fixture, shared with test_relocation_ray

MIN_STAY_S = 600
SERVE = {
    "import_path": "workers.examples.serve_app:app",
    "config": {
        "deployments": [
            {"name": "MlpService", "num_replicas": 1, "ray_actor_options": {"num_cpus": 0.1}},
            {"name": "UnitCounter", "num_replicas": 1, "ray_actor_options": {"num_cpus": 0}},
        ]
    },
}


@pytest.fixture
def live(tmp_path: Path, cluster: LocalRayHead) -> Iterator[Live]:
    serve_port = free_port()
    # Both nodes of this cluster share one host, so a proxy on each would share the Serve port
    # (SO_REUSEPORT) and a connection could land on gl-b's proxy while it still starts (404).
    # Across hosts each node has its own address; here Serve starts with the head's proxy only.
    started = requests.put(
        f"{cluster.dashboard_url}/api/serve/applications/",
        json={
            "proxy_location": "HeadOnly",
            "http_options": {"host": "0.0.0.0", "port": serve_port},
            "applications": [],
        },
        timeout=60,
    )
    assert started.ok, started.text
    relocation = {
        "min_stay_s": MIN_STAY_S,
        "threshold_g": 0.01,
        "threshold_pct": 5.0,
        "health_timeout_s": 150,
        "drain_s": 3,
    }
    with open_live(tmp_path, cluster, relocation, serve_http_port=serve_port) as live:
        yield live


def _apps(head: LocalRayHead) -> dict[str, Any]:
    body = requests.get(f"{head.dashboard_url}/api/serve/applications/", timeout=30).json()
    return dict(body.get("applications") or {})


def _replica_labels(head: LocalRayHead, app: str) -> set[str]:
    """The node-group labels of the nodes running ``app``'s replicas."""
    labels = {
        n.node_id: {A_LABEL, B_LABEL} & set(n.resources_total)
        for n in list_nodes(address=head.dashboard_url, detail=True)
    }
    actors = list_actors(address=head.dashboard_url, filters=[("state", "=", "ALIVE")], limit=1000)
    return {
        label
        for a in actors
        if a.class_name and a.class_name.startswith("ServeReplica:") and f":{app}:" in a.class_name
        for label in labels.get(a.node_id or "", set())
    }


def _get(url: str) -> int | None:
    try:
        return requests.get(url, timeout=5).status_code
    except requests.RequestException:
        return None


def test_serve_application_relocates_once_without_a_failed_request(
    live: Live, cluster: LocalRayHead
) -> None:
    live.trace(a_g_per_kwh=100, b_g_per_kwh=400)
    body = {
        "name": "mlp-serve-app",
        "kind": "deployment",
        "home_region": A,
        "entrypoint": "serve workers.examples.serve_app:app",
        "resources": {"gpus": 0, "cpus": 0.1},
        "allowed_regions": [A, B],
        "serve": SERVE,
    }
    created = requests.post(f"{live.url}/v1/jobs", json=body, headers=live.headers, timeout=30)
    assert created.status_code == 201, created.text
    job_id = str(created.json()["id"])
    old_sid, new_sid = f"{job_id}-1", f"{job_id}-2"
    job = live.drive_until(
        job_id,
        lambda j: (
            j.state is JobState.RUNNING
            and j.endpoint is not None
            and _get(f"{j.endpoint}/healthz") == 200
        ),
    )
    assert (job.region, job.submission_id) == (A, old_sid)
    assert job.endpoint is not None
    assert job.endpoint.endswith(f"/{old_sid}")
    assert _replica_labels(cluster, old_sid) == {A_LABEL}

    client = Client(live, job_id)
    client.start()
    try:
        live.clock.shift += timedelta(seconds=MIN_STAY_S + 60)  # past the stay; B turns greener
        live.trace(a_g_per_kwh=400, b_g_per_kwh=100)
        live.service.plan_cycle()
        moving = live.job(job_id)
        assert moving.state is JobState.RELOCATING, live.kinds(job_id)
        assert moving.move is not None
        assert moving.move.to_region == B
        moved = live.drive_until(job_id, lambda j: j.state is JobState.RUNNING and j.move is None)
        time.sleep(1.0)  # the client keeps calling the new application a while
    finally:
        client.stop()

    assert client.failed == []
    assert client.ok > 20
    assert client.endpoints == [job.endpoint, moved.endpoint]
    assert (moved.region, moved.submission_id, moved.attempt) == (B, new_sid, 2)
    assert moved.endpoint is not None
    assert moved.endpoint.endswith(f"/{new_sid}")
    assert _replica_labels(cluster, new_sid) == {B_LABEL}  # the new copy runs in gl-b's nodes
    # Only the old application left Serve: the new one serves on.
    live.wait_status(A, old_sid, RunStatus.UNKNOWN)
    apps = _apps(cluster)
    assert old_sid not in apps
    assert apps[new_sid]["status"] == "RUNNING"
    assert _get(f"{moved.endpoint}/healthz") == 200
    after = live.endpoint(job_id)
    assert (after["endpoint"], after["region"], after["state"]) == (moved.endpoint, B, "running")

    events = live.service.events(job_id, ADMIN)
    kinds = [e.kind for e in events]
    assert kinds.count("relocated") == 1
    assert kinds.index("switch") < kinds.index(COPY_STOPPED) < kinds.index("relocated")
    relocated = next(e for e in events if e.kind == "relocated")
    assert f"from {A} to {B}: expected to save" in relocated.reason
    stopped_at = next(e.at for e in events if e.kind == COPY_STOPPED)

    # Estimates: each copy under its own attempt, where it ran; the old one's up to its stop.
    deadline = time.monotonic() + 60
    while True:
        live.service.reconcile()
        estimates = [
            r
            for r in live.service.ctx.store.energy_reports([job_id])
            if r.method is MeterMethod.ESTIMATE
        ]
        old_end = max((r.interval_end for r in estimates if r.attempt == 1), default=None)
        if old_end == stopped_at and any(r.attempt == 2 for r in estimates):
            break
        assert time.monotonic() < deadline, f"estimates incomplete: old copy to {old_end}"
        time.sleep(1.0)
    assert {(r.attempt, r.node) for r in estimates} == {
        (1, f"ray-serve:{A}"),
        (2, f"ray-serve:{B}"),
    }
    assert min(r.interval_start for r in estimates if r.attempt == 2) >= moving.move.started_at

    # Not back: the same forecast later on.
    live.clock.shift += timedelta(seconds=MIN_STAY_S + 60)
    live.cycle()
    final = live.job(job_id)
    assert (final.state, final.region, len(final.relocations)) == (JobState.RUNNING, B, 1)
