"""The real runner, as a subprocess, runs the example trainer against a real API (uvicorn on
loopback, SQLite): the job's step count reaches the store through ``workers.units``, the
units file and ``POST /v1/jobs/{id}/progress``, with the attempt's token."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests

from scheduler.bootstrap import build_service, start_api_thread
from scheduler.config import load_settings
from scheduler.dispatch.local_ray import free_port
from scheduler.domain import Role
from scheduler.domain.progress import JobProgress
from scheduler.service import GreenlightService
from workers.examples.model import INPUT_DIM
from workers.units import read_units_file

REPO = Path(__file__).resolve().parents[2]
TIMEOUT_S = (3.0, 30.0)


class WallClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def from_wall(self, wall: datetime) -> datetime:
        return wall


@dataclass
class Live:
    service: GreenlightService
    url: str
    admin: str


@pytest.fixture
def live(sqlite_url: str) -> Iterator[Live]:
    port = free_port()
    service = build_service(
        load_settings(database_url=sqlite_url, api_port=port), clock=WallClock()
    )
    service.refresh_forecasts()
    server = start_api_thread(service, "127.0.0.1", port)
    admin, _ = service.create_token(tenant="ops", role=Role.ADMIN)
    try:
        yield Live(service=service, url=server.url, admin=admin)
    finally:
        server.stop()


def _dispatched_job(live: Live) -> str:
    """A training job submitted over HTTP to run now and claimed (attempt 1), as the
    dispatch cycle would before handing it to Ray."""
    response = requests.post(
        f"{live.url}/v1/jobs",
        json={
            "name": "mlp",
            "tenant": "acme",
            "entrypoint": "python -m workers.examples.train_mlp",
            "home_region": "eu-central",
            "expected_duration_s": 60,
            "max_delay_s": 0,
        },
        headers={"Authorization": f"Bearer {live.admin}"},
        timeout=TIMEOUT_S,
    )
    assert response.status_code == 201, response.text
    job_id: str = response.json()["id"]
    live.service.plan_cycle()
    claimed = live.service.ctx.store.claim_due(live.service.ctx.clock.now(), limit=10)
    assert job_id in [j.id for j in claimed]
    return job_id


def test_the_runner_reports_the_trainers_step_count(live: Live, tmp_path: Path) -> None:
    job_id = _dispatched_job(live)
    token, _ = live.service.create_token(tenant="acme", role=Role.JOB, job_id=job_id)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GREENLIGHT_")}
    env.update(
        {
            "GREENLIGHT_API_URL": live.url,
            "GREENLIGHT_JOB_ID": job_id,
            "GREENLIGHT_TOKEN": token,
            "GREENLIGHT_ATTEMPT": "1",
            "GREENLIGHT_METER": "estimate",
            "GREENLIGHT_GPUS": "0",
            "GREENLIGHT_CPUS": "1",
        }
    )
    steps = 37
    argv = [
        sys.executable,
        "-m",
        "workers.runner",
        "--interval-s",
        "0.5",
        "--",
        sys.executable,
        "-m",
        "workers.examples.train_mlp",
        "--device",
        "cpu",
        "--steps",
        str(steps),
        "--batch-size",
        "8",
        "--checkpoint",
        str(tmp_path / "ckpt.pt"),
    ]
    done = subprocess.run(
        argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=180, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"done step={steps}" in done.stdout
    stored = live.service.ctx.store.job_progress([job_id])
    assert stored == {job_id: JobProgress(job_id=job_id, attempt=1, units=steps, unit="steps")}
    assert live.service.ctx.store.energy_reports([job_id]), "energy went the same way"
    assert '"units": 37.0' in done.stderr  # the runner's summary line


def test_the_served_model_counts_the_predictions_it_answered(tmp_path: Path) -> None:
    """Without an API (a local run) the count still lands in the units file the runner named:
    three answered predictions are three requests; a refused body is none."""
    units_file = tmp_path / "units.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GREENLIGHT_")}
    env.update({"GREENLIGHT_METER": "estimate", "GREENLIGHT_UNITS_FILE": str(units_file)})
    argv = [sys.executable, "-m", "workers.runner", "--", sys.executable, "-m"]
    argv += ["workers.examples.serve_model", "--port", "0", "--device", "cpu"]
    process = subprocess.Popen(
        argv, cwd=REPO, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        match = re.match(r"serving on (http://127\.0\.0\.1:\d+) ", first)
        assert match, first
        url = match.group(1)
        rows = [[0.5] * INPUT_DIM]
        for _ in range(3):
            answer = requests.post(f"{url}/predict", json={"inputs": rows}, timeout=TIMEOUT_S)
            assert answer.status_code == 200
        refused = requests.post(f"{url}/predict", json={"inputs": [[1.0]]}, timeout=TIMEOUT_S)
        assert refused.status_code == 400
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert read_units_file(units_file) == (3.0, "requests")
    assert '"units": 3.0' in err  # the runner read it at exit
