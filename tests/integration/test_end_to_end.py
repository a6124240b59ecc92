"""The whole path on real parts: REST API (uvicorn) -> plan -> Ray (local head) -> worker runner
running the example trainer -> energy reports over HTTP -> savings report."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import requests

from scheduler.bootstrap import RayEndpoint, build_service, start_api_thread
from scheduler.config import load_settings
from scheduler.dispatch.local_ray import LocalRayHead, free_port
from scheduler.domain import J_PER_KWH, JobState, Principal, Role
from scheduler.service import GreenlightService

pytestmark = pytest.mark.ray
TIMEOUT_S = (3.0, 30.0)


@pytest.fixture
def live(sqlite_url: str, ray_cluster: LocalRayHead) -> Iterator[tuple[GreenlightService, str]]:
    port = free_port()
    settings = load_settings(database_url=sqlite_url, api_port=port)
    service = build_service(settings, ray=RayEndpoint(ray_cluster.dashboard_url))
    service.refresh_forecasts()
    server = start_api_thread(service, "127.0.0.1", port)
    try:
        yield service, server.url
    finally:
        server.stop()


def _drive_until(
    service: GreenlightService, job_id: str, states: set[JobState], timeout_s: float = 120.0
) -> JobState:
    """Fire the cycles as APScheduler would, until the job reaches one of ``states``."""
    admin = Principal(tenant="ops", role=Role.ADMIN, token_id="t")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        service.plan_cycle()
        service.dispatch_due()
        service.reconcile()
        state = service.get_job(job_id, admin).state
        if state in states:
            return state
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} stuck in {state}")


def test_training_job_runs_on_ray_reports_energy_and_is_accounted(
    live: tuple[GreenlightService, str],
) -> None:
    service, url = live
    secret, _ = service.create_token(tenant="acme", role=Role.USER)
    headers = {"Authorization": f"Bearer {secret}"}
    now = datetime.now(UTC)
    # Deadline = now + duration + 30 s: under one 5-min slot of slack, so it must start now.
    body = {
        "name": "mlp",
        "kind": "training",
        "home_region": "eu-central",
        "entrypoint": f"{sys.executable} -m workers.examples.train_mlp --steps 30 --log-every 10",
        "expected_duration_s": 600,
        "resources": {"gpus": 0, "cpus": 1},
        "deadline": (now + timedelta(seconds=630)).isoformat(),
    }
    created = requests.post(f"{url}/v1/jobs", json=body, headers=headers, timeout=TIMEOUT_S)
    assert created.status_code == 201, created.text
    job_id = created.json()["id"]
    assert created.json()["state"] == "pending"  # a submit never plans in the request
    service.plan_cycle()  # the cycle its arrival wakes
    plan = requests.get(f"{url}/v1/jobs/{job_id}", headers=headers, timeout=TIMEOUT_S).json()
    assert plan["state"] == "planned"
    planned_start = datetime.fromisoformat(plan["plan"]["planned_start"])
    assert planned_start <= datetime.now(UTC) + timedelta(seconds=1)

    assert (
        _drive_until(service, job_id, {JobState.SUCCEEDED, JobState.FAILED}) is JobState.SUCCEEDED
    )

    events = requests.get(
        f"{url}/v1/jobs/{job_id}/events", headers=headers, timeout=TIMEOUT_S
    ).json()["data"]
    states = [e["to_state"] for e in events if e["to_state"]]
    for expected in ("pending", "planned", "dispatched", "running", "succeeded"):
        assert expected in states
    assert (
        states.index("planned")
        < states.index("dispatched")
        < states.index("running")
        < states.index("succeeded")
    )

    job = service.get_job(job_id, Principal(tenant="acme", role=Role.USER, token_id="t"))
    assert job.submission_id == f"{job_id}-1"
    logs = requests.get(f"{url}/v1/jobs/{job_id}/logs", headers=headers, timeout=TIMEOUT_S)
    assert "step=30" in logs.json()["logs"]

    reports = service.ctx.store.energy_reports([job_id])
    assert reports, "the runner sent no energy report"
    assert {r.method.value for r in reports} == {"estimate"}
    assert all(r.attempt == 1 for r in reports)
    # Estimate = configured power x time: 1 CPU core (12 W) + base (20 W) while it ran.
    by_device: dict[str, float] = {}
    for r in reports:
        by_device[r.device] = by_device.get(r.device, 0.0) + r.energy_j
    span_s = (
        max(r.interval_end for r in reports) - min(r.interval_start for r in reports)
    ).total_seconds()
    assert by_device["estimate:base"] == pytest.approx(20.0 * span_s, rel=0.05)
    assert by_device["estimate:cpu"] == pytest.approx(12.0 * span_s, rel=0.05)

    report = requests.get(
        f"{url}/v1/reports/savings", params={"format": "json"}, headers=headers, timeout=TIMEOUT_S
    ).json()
    row = next(j for j in report["jobs"] if j["job_id"] == job_id)
    energy_kwh = sum(r.energy_j for r in reports) / J_PER_KWH
    assert row["energy_kwh"] == pytest.approx(energy_kwh, rel=1e-9)
    # Emissions recomputed independently: each report's energy x PUE x the time-weighted actual
    # intensity of the region it ran in (the planner may have moved it out of its home region).
    assert job.region is not None
    assert row["region"] == job.region
    region = service.ctx.regions[job.region]
    actuals = service.ctx.store.actuals(
        region.grid_zone, now - timedelta(hours=2), now + timedelta(hours=2)
    )
    assert actuals is not None
    expected_g = 0.0
    for r in reports:
        expected_g += (
            r.energy_kwh
            * region.pue
            * _mean_intensity(actuals.points, r.interval_start, r.interval_end)
        )
    assert row["emissions_g"] == pytest.approx(expected_g, rel=1e-6)
    # Baseline: the same energy profile shifted to the submit time, in the home region.
    home = service.ctx.regions["eu-central"]
    home_actuals = service.ctx.store.actuals(
        home.grid_zone, now - timedelta(hours=2), now + timedelta(hours=2)
    )
    assert home_actuals is not None
    assert job.started_at is not None
    shift = job.created_at - min(job.started_at, *(r.interval_start for r in reports))
    baseline_g = sum(
        r.energy_kwh
        * home.pue
        * _mean_intensity(home_actuals.points, r.interval_start + shift, r.interval_end + shift)
        for r in reports
    )
    assert row["baseline_g"] == pytest.approx(baseline_g, rel=1e-6)
    assert row["saved_g"] == pytest.approx(row["baseline_g"] - row["emissions_g"], rel=1e-9)


def _mean_intensity(points: tuple, start: datetime, end: datetime) -> float:  # type: ignore[type-arg]
    """Time-weighted intensity over [start, end) on an hourly step series."""
    total_s = (end - start).total_seconds()
    if total_s <= 0:
        return next(p.g_per_kwh for p in reversed(points) if p.valid_at <= start)
    acc = 0.0
    for i, p in enumerate(points):
        p_end = points[i + 1].valid_at if i + 1 < len(points) else p.valid_at + timedelta(hours=1)
        overlap = (min(end, p_end) - max(start, p.valid_at)).total_seconds()
        if overlap > 0:
            acc += p.g_per_kwh * overlap
    return acc / total_s


def test_deployment_is_served_on_ray_and_cancel_stops_it(
    live: tuple[GreenlightService, str],
) -> None:
    service, url = live
    secret, _ = service.create_token(tenant="acme", role=Role.USER)
    headers = {"Authorization": f"Bearer {secret}"}
    port = free_port()
    body = {
        "name": "mlp-server",
        "kind": "deployment",
        "home_region": "us-west",
        "entrypoint": f"{sys.executable} -m workers.examples.serve_model --port {port}",
        "resources": {"gpus": 0, "cpus": 1},
    }
    created = requests.post(f"{url}/v1/jobs", json=body, headers=headers, timeout=TIMEOUT_S)
    assert created.status_code == 201, created.text
    job_id = created.json()["id"]
    assert _drive_until(service, job_id, {JobState.RUNNING, JobState.FAILED}) is JobState.RUNNING

    # The TorchScript model answers over HTTP while the deployment runs.
    deadline = time.monotonic() + 60
    prediction = None
    while time.monotonic() < deadline and prediction is None:
        try:
            reply = requests.post(
                f"http://127.0.0.1:{port}/predict",
                json={"inputs": [[0.5] * 1000]},
                timeout=TIMEOUT_S,
            )
            prediction = reply.json()["outputs"]
        except requests.ConnectionError:
            time.sleep(0.5)
    assert prediction is not None
    assert len(prediction) == 1

    cancelled = requests.post(f"{url}/v1/jobs/{job_id}/cancel", headers=headers, timeout=TIMEOUT_S)
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["state"] == "cancelled"
    job = service.get_job(job_id, Principal(tenant="acme", role=Role.ADMIN, token_id="t"))
    assert job.region is not None
    assert job.submission_id is not None
    region = service.ctx.regions[job.region]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if service.ctx.dispatcher.status(region, job.submission_id).status.value == "stopped":
            break
        time.sleep(0.5)
    assert service.ctx.dispatcher.status(region, job.submission_id).status.value == "stopped"
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/healthz", timeout=(1, 2))
