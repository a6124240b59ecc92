"""A job's count of functional units (SCI's R) and a deployment's endpoint where a user looks:
``GET /v1/jobs/{id}``, ``greenlight show`` and ``greenlight show --json``, against a live API."""

from __future__ import annotations

import json
from typing import Any

import requests

from scheduler.domain.progress import JobProgress
from tests.integration.test_api import job_body
from tests.integration.test_cli import Live, in_process, live, ok

__all__ = ["live"]  # the fixture, imported so pytest finds it here


def _submit(live: Live, token: str, **overrides: Any) -> dict[str, Any]:
    response = requests.post(
        f"{live.url}/v1/jobs",
        json=job_body(**overrides),
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert response.status_code == 201, response.text
    job: dict[str, Any] = response.json()
    return job


def test_show_gives_the_count_and_the_endpoint(live: Live) -> None:
    _, token = live.user()
    served = _submit(live, token, name="web", kind="deployment", expected_duration_s=None)
    trained = _submit(live, token, name="fit")
    service, store = live.service, live.service.ctx.store
    service.plan_cycle()
    now = service.ctx.clock.now()
    claimed = {j.id for j in store.claim_due(now, limit=1000)}
    assert served["id"] in claimed
    assert store.set_endpoint(served["id"], 1, "http://10.1.2.3:8000", now)
    store.record_progress(
        JobProgress(job_id=served["id"], attempt=1, units=12_345, unit="requests")
    )

    api = requests.get(
        f"{live.url}/v1/jobs/{served['id']}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    ).json()
    assert api["functional_units"] == {"units": 12_345.0, "unit": "requests", "attempt": 1}
    assert api["endpoint"] == "http://10.1.2.3:8000"

    shown = json.loads(ok(in_process("show", served["id"], "--json", url=live.url, token=token)))
    assert shown["functional_units"] == api["functional_units"]
    assert shown["endpoint"] == "http://10.1.2.3:8000"
    table = ok(in_process("show", served["id"], url=live.url, token=token))
    assert "12,345 requests (attempt 1)" in table
    assert "http://10.1.2.3:8000" in table

    # Before its worker sent a count: none, said so; a training job has no endpoint row.
    none = json.loads(ok(in_process("show", trained["id"], "--json", url=live.url, token=token)))
    assert none["functional_units"] is None
    table = ok(in_process("show", trained["id"], url=live.url, token=token))
    row = next(line for line in table.splitlines() if line.startswith("functional_units"))
    assert row.split() == ["functional_units", "-"]
    assert "endpoint" not in table
