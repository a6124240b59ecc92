"""Worker credentials on a real Ray head: what Ray records about a job is worthless, and the
attempt's token stops working once the attempt has ended (after its documented grace).

The job runs through the real path: REST API (uvicorn) -> plan -> dispatch to Ray -> worker
runner, which exchanges its one-time bootstrap credential and reports energy with the token.
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
import requests
from ray.job_submission import JobSubmissionClient

from scheduler.bootstrap import RayEndpoint, build_service, start_api_thread
from scheduler.config import load_settings
from scheduler.dispatch.local_ray import LocalRayHead, free_port
from scheduler.domain import JobState, Principal, Role
from scheduler.domain.energy import ATTEMPT_GRACE_S
from scheduler.service import GreenlightService
from scheduler.service.tokens import BOOTSTRAP_PREFIX, TOKEN_PREFIX, hash_token

pytestmark = pytest.mark.ray
TIMEOUT_S = (3.0, 30.0)
_SECRET = re.compile(r"gl[bt]_[A-Za-z0-9_-]{20,}")


@dataclass
class ShiftedClock:
    """The wall clock, moved ``shift`` ahead on demand: lets a test reach the end of a grace
    period without waiting ten minutes, while Ray and the runner keep real time."""

    shift: timedelta = field(default_factory=timedelta)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.shift

    def from_wall(self, wall: datetime) -> datetime:
        return wall


@dataclass
class Live:
    service: GreenlightService
    url: str
    clock: ShiftedClock
    ray: LocalRayHead


@pytest.fixture
def live(sqlite_url: str, ray_cluster: LocalRayHead) -> Iterator[Live]:
    port = free_port()
    clock = ShiftedClock()
    settings = load_settings(database_url=sqlite_url, api_port=port)
    service = build_service(settings, clock=clock, ray=RayEndpoint(ray_cluster.dashboard_url))
    service.refresh_forecasts()
    server = start_api_thread(service, "127.0.0.1", port)
    try:
        yield Live(service=service, url=server.url, clock=clock, ray=ray_cluster)
    finally:
        server.stop()


def _drive_until(service: GreenlightService, job_id: str, states: set[JobState]) -> JobState:
    admin = Principal(tenant="ops", role=Role.ADMIN, token_id="t")
    deadline = time.monotonic() + 120.0
    while time.monotonic() < deadline:
        service.plan_cycle()
        service.dispatch_due()
        service.reconcile()
        state = service.get_job(job_id, admin).state
        if state in states:
            return state
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} stuck in {state}")


def _ray_records(client: JobSubmissionClient, submission_id: str) -> str:
    """Everything Ray tells anyone who can list jobs about this one, as text."""
    info = client.get_job_info(submission_id)
    listed = [j for j in client.list_jobs() if j.submission_id == submission_id]
    assert listed, "Ray does not list the job"
    dumped = [json.dumps(j.dict() if hasattr(j, "dict") else vars(j), default=str) for j in listed]
    return json.dumps(info.dict(), default=str) + "\n".join(dumped)


def test_ray_holds_no_live_secret_and_the_token_dies_with_the_attempt(live: Live) -> None:
    service = live.service
    secret, _ = service.create_token(tenant="acme", role=Role.USER)
    headers = {"Authorization": f"Bearer {secret}"}
    body = {
        "name": "short",
        "home_region": "eu-central",
        "entrypoint": f"{sys.executable} -c 'import time; time.sleep(3)'",
        "expected_duration_s": 300,
        "resources": {"gpus": 0, "cpus": 1},
        "deadline": (datetime.now(UTC) + timedelta(seconds=330)).isoformat(),
    }
    created = requests.post(f"{live.url}/v1/jobs", json=body, headers=headers, timeout=TIMEOUT_S)
    assert created.status_code == 201, created.text
    job_id = created.json()["id"]
    assert _drive_until(service, job_id, {JobState.SUCCEEDED, JobState.FAILED}) is (
        JobState.SUCCEEDED
    )
    # The runner exchanged its bootstrap credential: its reports came in with the token.
    reports = service.ctx.store.energy_reports([job_id])
    assert reports, "the runner sent no energy report"
    tokens = service.list_tokens(include_workers=True)
    bootstrap = [t for t in tokens if t.job_id == job_id and t.role is Role.BOOTSTRAP]
    attempt = [t for t in tokens if t.job_id == job_id and t.role is Role.JOB]
    assert len(bootstrap) == 1
    assert bootstrap[0].revoked  # used up by the exchange
    assert [t.attempt for t in attempt] == [1]

    # What Ray records (job info, listing: entrypoint, runtime_env, metadata) holds no token
    # of the attempt, only the used bootstrap credential.
    job = service.ctx.store.get_job(job_id)
    assert job.submission_id is not None
    recorded = _ray_records(JobSubmissionClient(live.ray.dashboard_url), job.submission_id)
    found = set(_SECRET.findall(recorded))
    assert found, "expected the bootstrap credential in Ray's runtime_env"
    assert all(s.startswith(BOOTSTRAP_PREFIX) for s in found)
    assert not any(s.startswith(TOKEN_PREFIX) for s in found)
    live_hashes = {t.token_hash for t in attempt}
    assert not {hash_token(s) for s in found} & live_hashes

    # A token of the ended attempt works through the grace for the final report, then never.
    late_secret, _ = service.create_token(tenant="acme", role=Role.JOB, job_id=job_id)
    as_worker = {"Authorization": f"Bearer {late_secret}"}
    job_url = f"{live.url}/v1/jobs/{job_id}"
    assert requests.get(job_url, headers=as_worker, timeout=TIMEOUT_S).status_code == 200
    live.clock.shift = timedelta(seconds=ATTEMPT_GRACE_S + 5)
    refused = requests.get(job_url, headers=as_worker, timeout=TIMEOUT_S)
    assert refused.status_code == 401
    assert "ended" in refused.json()["detail"]
    report = {
        "attempt": 1,
        "node": "n",
        "device": "cpu:package-0",
        "interval_start": reports[-1].interval_end.isoformat(),
        "interval_end": (reports[-1].interval_end + timedelta(seconds=1)).isoformat(),
        "energy_j": 1.0,
        "method": "rapl",
    }
    late = requests.post(
        f"{job_url}/energy", json={"reports": [report]}, headers=as_worker, timeout=TIMEOUT_S
    )
    assert late.status_code == 401

    # The bootstrap Ray recorded is worthless: not a bearer token, and not exchangeable again.
    for leaked in found:
        stolen = {"Authorization": f"Bearer {leaked}"}
        assert requests.get(job_url, headers=stolen, timeout=TIMEOUT_S).status_code == 401
        again = requests.post(f"{live.url}/v1/tokens/exchange", headers=stolen, timeout=TIMEOUT_S)
        assert again.status_code == 401
    assert len(service.ctx.store.energy_reports([job_id])) == len(reports)
