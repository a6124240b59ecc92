"""Through the whole path on a real local Ray head: REST submit -> plan -> dispatch -> the
worker runner (bootstrap credential exchanged for the attempt's token) -> the example trainer
counting its steps with ``workers.units`` -> ``POST /v1/jobs/{id}/progress`` -> the report's
SCI per 1,000 steps."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta

import pytest
import requests

from scheduler.domain import JobState, Principal, Role
from scheduler.domain.progress import JobProgress
from tests.integration.test_worker_tokens import TIMEOUT_S, Live, _drive_until, live

__all__ = ["live"]  # the fixture, imported so pytest finds it here
pytestmark = pytest.mark.ray
ADMIN = Principal(tenant="ops", role=Role.ADMIN, token_id="t")


def test_a_ray_job_reports_its_steps_and_the_report_divides_by_them(live: Live) -> None:
    service = live.service
    secret, _ = service.create_token(tenant="acme", role=Role.USER)
    steps = 25
    body = {
        "name": "mlp",
        "home_region": "eu-central",
        "entrypoint": f"{sys.executable} -m workers.examples.train_mlp --device cpu "
        f"--steps {steps} --batch-size 8",
        "expected_duration_s": 300,
        "resources": {"gpus": 0, "cpus": 1},
        "deadline": (datetime.now(UTC) + timedelta(seconds=330)).isoformat(),
    }
    created = requests.post(
        f"{live.url}/v1/jobs",
        json=body,
        headers={"Authorization": f"Bearer {secret}"},
        timeout=TIMEOUT_S,
    )
    assert created.status_code == 201, created.text
    job_id = created.json()["id"]
    state = _drive_until(service, job_id, {JobState.SUCCEEDED, JobState.FAILED})
    assert state is JobState.SUCCEEDED, service.logs(job_id, ADMIN)[-2000:]
    stored = service.ctx.store.job_progress([job_id])
    assert stored == {job_id: JobProgress(job_id=job_id, attempt=1, units=steps, unit="steps")}
    report = service.savings_report(ADMIN)
    row = next(j for j in report.jobs if j.job_id == job_id)
    assert row.functional_units == steps
    assert row.sci_g_per_r is not None
    assert row.sci_g_per_r == pytest.approx(
        (row.emissions_g + row.embodied_g) / (steps / 1000), rel=1e-12
    )
