"""Per-request accounting of a Ray Serve application, end to end on a real local Ray head: the
example Serve app deployed through Greenlight, N requests sent to it, reconcile polling its
request total (summed over two replicas) as the job's progress and writing flagged estimate
energy over consecutive intervals up to the cancel; the savings report's energy and emissions
per 1,000 requests recomputed by hand from the stored reports and actuals."""

from __future__ import annotations

import itertools
import json
import time
from datetime import datetime, timedelta
from typing import Any

import pytest
import requests
from fastapi.testclient import TestClient

from scheduler.api.app import create_app
from scheduler.bootstrap import RayEndpoint, build_service
from scheduler.config import load_settings
from scheduler.dispatch.local_ray import LocalRayHead, free_port
from scheduler.domain import J_PER_KWH, EnergyReport, Forecast, JobState, MeterMethod, Role
from scheduler.service.energy import attempt_run
from tests.integration.test_ray_serve_app import gpu_head  # noqa: F401  (the Ray head fixture)
from workers.examples.model import INPUT_DIM

pytestmark = pytest.mark.ray

WAIT_S = 180.0  # a guard against hanging, not a timing
N_REQUESTS = 9
PUE = 1.2
SERVE = {
    "import_path": "workers.examples.serve_app:app",
    "config": {
        "deployments": [
            {
                "name": "MlpService",
                "num_replicas": 2,
                "ray_actor_options": {"num_cpus": 0.1, "num_gpus": 0.25},
            }
        ]
    },
}


def _until(what: str, check: Any, step_s: float = 1.0) -> Any:
    deadline = time.monotonic() + WAIT_S
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(step_s)


def _get(url: str) -> int | None:
    try:
        return requests.get(url, timeout=5).status_code
    except requests.RequestException:
        return None


def _emissions_by_hand(reports: list[EnergyReport], actuals: Forecast) -> float:
    """Each report's energy spread uniformly over its interval x PUE x the actual intensity,
    a step function (each point holds from its valid_at for its resolution or to the next)."""
    points = list(actuals.points)
    total_g = 0.0
    for r in reports:
        span_s = (r.interval_end - r.interval_start).total_seconds()
        for i, p in enumerate(points):
            until = p.valid_at + timedelta(seconds=actuals.resolution_s)
            if i + 1 < len(points):
                until = min(until, points[i + 1].valid_at)
            a, b = max(p.valid_at, r.interval_start), min(until, r.interval_end)
            if b > a:
                share = (b - a).total_seconds() / span_s
                total_g += r.energy_j * share / J_PER_KWH * PUE * p.g_per_kwh
    return total_g


@pytest.mark.timeout(540)  # a Ray head, Serve's start and a 30 s estimate interval
def test_serve_app_requests_and_estimated_energy_give_figures_per_1k_requests(
    gpu_head: LocalRayHead,  # noqa: F811
    sqlite_url: str,
) -> None:
    port = free_port()
    settings = load_settings(
        database_url=sqlite_url,
        regions=[
            {"name": "eu-central", "grid_zone": "DE", "provider": "replay", "gpus": 1, "pue": PUE}
        ],
        serve_http_host="127.0.0.1",
        serve_http_port=port,
    )
    service = build_service(settings, ray=RayEndpoint(gpu_head.dashboard_url))
    service.refresh_forecasts()
    ctx = service.ctx
    secret, _ = service.create_token(tenant="acme", role=Role.USER)
    headers = {"Authorization": f"Bearer {secret}"}
    body = {
        "name": "mlp-serve-accounted",
        "kind": "deployment",
        "entrypoint": "serve workers.examples.serve_app:app",
        "home_region": "eu-central",
        "policy": "now",
        "resources": {"gpus": 0.5, "cpus": 0.2},
        "serve": SERVE,
    }
    with TestClient(create_app(service)) as http:
        created = http.post("/v1/jobs", json=body, headers=headers)
        assert created.status_code == 201, created.text
        job_id = created.json()["id"]
        service.plan_cycle()
        assert service.dispatch_due() == [job_id]
        sid = ctx.store.get_job(job_id).submission_id
        url = f"http://127.0.0.1:{port}/{sid}"

        def running() -> bool:
            service.reconcile()
            return ctx.store.get_job(job_id).state is JobState.RUNNING

        _until("the job to run", running)
        _until("the proxy to answer", lambda: _get(f"{url}/healthz") == 200)

        for i in range(N_REQUESTS):  # some repeated: a cache hit is a request served too
            rows = [[0.01 * ((k + i % 4) % 7) for k in range(INPUT_DIM)]]
            answer = requests.post(f"{url}/predict", data=json.dumps({"inputs": rows}), timeout=30)
            assert answer.status_code == 200, answer.text
        bad = requests.post(f"{url}/predict", data="not json", timeout=30)
        assert bad.status_code == 400  # refused: not a request answered

        def counted() -> bool:
            service.reconcile()
            progress = ctx.store.job_progress([job_id]).get(job_id)
            return progress is not None and progress.units == N_REQUESTS

        _until("reconcile to record the request count", counted)
        units = requests.get(f"{url}/-/units", timeout=30).json()
        assert units == {"units": N_REQUESTS, "unit": "requests"}

        def estimated() -> bool:  # a periodic interval while it runs (30 s from dispatch)
            service.reconcile()
            return bool(ctx.store.energy_reports([job_id]))

        _until("a periodic estimate", estimated, step_s=2.0)
        cancelled = http.post(f"/v1/jobs/{job_id}/cancel", headers=headers)
        assert cancelled.status_code == 200, cancelled.text
        job = ctx.store.get_job(job_id)
        run = attempt_run(job, ctx.store.events(job_id), job.attempt)
        assert run is not None
        assert run.ended_at is not None

        def final() -> bool:
            service.reconcile()
            ends = [r.interval_end for r in ctx.store.energy_reports([job_id])]
            return max(ends) == run.ended_at

        _until("the final estimate", final)
        reports = ctx.store.energy_reports([job_id])
        progress = ctx.store.job_progress([job_id])[job_id]
        assert (progress.units, progress.unit) == (N_REQUESTS, "requests")

        # Consecutive intervals per device from the dispatch to the cancel: no gap, no overlap.
        assert {r.method for r in reports} == {MeterMethod.ESTIMATE}
        by_device: dict[str, list[EnergyReport]] = {}
        for r in reports:
            by_device.setdefault(r.device, []).append(r)
        assert set(by_device) == {"estimate:gpu", "estimate:cpu", "estimate:base"}
        power_w = {"estimate:gpu": 0.5 * 300.0, "estimate:cpu": 0.2 * 12.0, "estimate:base": 20.0}
        for device, spans in by_device.items():
            spans.sort(key=lambda r: r.interval_start)
            assert len(spans) >= 2  # one periodic, one final at least
            assert spans[0].interval_start == run.started_at
            assert spans[-1].interval_end == run.ended_at
            for before, after in itertools.pairwise(spans):
                assert before.interval_end == after.interval_start
            for r in spans:
                seconds = (r.interval_end - r.interval_start).total_seconds()
                assert r.energy_j == pytest.approx(power_w[device] * seconds)

        report = http.get("/v1/reports/savings", headers=headers)
        assert report.status_code == 200, report.text
        row = next(j for j in report.json()["jobs"] if j["job_id"] == job_id)

    energy_kwh = sum(r.energy_j for r in reports) / J_PER_KWH
    assert row["energy_estimated"] is True
    assert row["energy_kwh"] == pytest.approx(energy_kwh, rel=1e-9)
    assert row["functional_units"] == N_REQUESTS
    assert row["functional_unit"] == "requests"
    thousands = N_REQUESTS / 1000
    assert row["energy_kwh_per_1k_requests"] == pytest.approx(energy_kwh / thousands, rel=1e-9)
    assert row["intensity_source"] == "actual"
    first: datetime = min(r.interval_start for r in reports)
    last: datetime = max(r.interval_end for r in reports)
    actuals = ctx.store.actuals(
        "DE", first - timedelta(hours=2), last + timedelta(hours=2), provider="replay"
    )
    assert actuals is not None
    emissions_g = _emissions_by_hand(reports, actuals)
    assert row["emissions_g"] == pytest.approx(emissions_g, rel=1e-6)
    assert row["emissions_g_per_1k_requests"] == pytest.approx(emissions_g / thousands, rel=1e-6)
