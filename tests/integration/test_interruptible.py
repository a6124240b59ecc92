"""An interruptible job split across two low-carbon windows: it runs on Ray in the first, is
suspended (SIGTERM -> checkpoint) when the window ends, and resumes from its checkpoint in the
second — the service's cycles, a real provider server, a real Ray and the real trainer."""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import torch

from scheduler.bootstrap import RayEndpoint, build_service
from scheduler.config import load_settings
from scheduler.dispatch.local_ray import LocalRayHead
from scheduler.domain import JobKind, JobSpec, JobState, Principal, Resources, Role
from scheduler.domain.runs import RunStatus
from scheduler.service import GreenlightService
from tests.fakes.clock import FakeClock
from tests.fakes.provider_server import ProviderServer, Reply, UkGridFake

pytestmark = pytest.mark.ray
NOW = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
ADMIN = Principal(tenant="ops", role=Role.ADMIN, token_id="t")
CLEAN_HOURS = ((1, 2), (5, 6))  # two clean hours with a dirty stretch between them


def _two_valleys(reply: Reply) -> Reply:
    data = reply.body["data"]
    start = datetime.fromisoformat(data[0]["from"].replace("Z", "+00:00"))
    for item in data:
        hour = (datetime.fromisoformat(item["from"].replace("Z", "+00:00")) - start) / timedelta(
            hours=1
        )
        clean = any(a <= hour < b for a, b in CLEAN_HOURS)
        item["intensity"]["forecast"] = 50 if clean else 400
    return Reply(status=reply.status, body=reply.body)


def _wait_run(service: GreenlightService, job_id: str, statuses: set[RunStatus]) -> RunStatus:
    job = service.get_job(job_id, ADMIN)
    assert job.region is not None
    assert job.submission_id is not None
    region = service.ctx.regions[job.region]
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        status = service.ctx.dispatcher.status(region, job.submission_id).status
        if status in statuses:
            return status
        time.sleep(0.5)
    raise AssertionError(f"run {job.submission_id} never reached {statuses}")


def test_interruptible_job_suspends_and_resumes_from_its_checkpoint(
    tmp_path: Path,
    sqlite_url: str,
    ray_cluster: LocalRayHead,
) -> None:
    clock = FakeClock(NOW)
    server = ProviderServer().start()
    fake = UkGridFake(server, NOW)
    server.route(fake.forecast_path, lambda request: _two_valleys(fake._forward(request)))
    config = tmp_path / "greenlight.toml"
    config.write_text(
        f'[[regions]]\nname = "uk"\ngrid_zone = "GB"\nprovider = "ukgrid"\n'
        f'base_url = "{server.url}"\ngpus = 2\n'
    )
    settings = load_settings(config, database_url=sqlite_url, checkpoint_dir=str(tmp_path / "ckpt"))
    service = build_service(settings, clock=clock, ray=RayEndpoint(ray_cluster.dashboard_url))
    service.refresh_forecasts()
    server.stop()

    spec = JobSpec(
        tenant="acme",
        name="resumable",
        kind=JobKind.TRAINING,
        home_region="uk",
        entrypoint=f"{sys.executable} -m workers.examples.train_mlp --steps 1500 "
        "--batch-size 64 --checkpoint-every 100000 --log-every 250",
        resources=Resources(gpus=0, cpus=1),
        expected_duration_s=7200,
        interruptible=True,
        deadline=NOW + timedelta(hours=8),
    )
    job = service.submit(spec, Principal(tenant="acme", role=Role.USER, token_id="u"))
    service.plan_cycle()  # a submit never plans: the cycle it wakes does
    job = service.ctx.store.get_job(job.id)
    assert job.plan is not None
    windows = [(w.start - NOW, w.end - NOW) for w in job.plan.windows]
    assert windows == [(timedelta(hours=a), timedelta(hours=b)) for a, b in CLEAN_HOURS]

    clock.set(NOW + timedelta(hours=1))
    assert service.dispatch_due() == [job.id]
    _wait_run(service, job.id, {RunStatus.RUNNING})
    service.reconcile()
    assert service.get_job(job.id, ADMIN).state is JobState.RUNNING
    # Let it train for a while before its window closes. Its SIGTERM handler (the checkpoint
    # on suspension) is in place once it trains: a slow, loaded machine once took over 90 s to
    # get there, and a suspension before it left no checkpoint to resume from.
    deadline = time.monotonic() + 240
    while "step=250 " not in service.logs(job.id, ADMIN) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert "step=250 " in service.logs(job.id, ADMIN), "the job did not train within 240 s"

    clock.set(NOW + timedelta(hours=2))  # the first window is over
    service.reconcile()
    assert service.get_job(job.id, ADMIN).state is JobState.SUSPENDED
    _wait_run(service, job.id, {RunStatus.STOPPED, RunStatus.FAILED})
    checkpoint = tmp_path / "ckpt" / f"{job.id}.pt"
    # Once in a CI run (2026-12-07) the run stopped after training with no checkpoint written:
    # show the job's own log when that happens, so the next look sees how it ended.
    assert checkpoint.exists(), service.logs(job.id, ADMIN)[-3000:]
    saved_step = torch.load(checkpoint, weights_only=False)["step"]
    assert 0 < saved_step < 1500

    service.plan_cycle()
    replanned = service.get_job(job.id, ADMIN)
    assert replanned.state is JobState.PLANNED
    assert replanned.plan is not None
    assert replanned.plan.start == NOW + timedelta(hours=5)
    clock.set(NOW + timedelta(hours=5))
    assert service.dispatch_due() == [job.id]
    assert (
        _wait_run(service, job.id, {RunStatus.SUCCEEDED, RunStatus.FAILED}) is RunStatus.SUCCEEDED
    )
    service.reconcile()
    final = service.get_job(job.id, ADMIN)
    assert final.state is JobState.SUCCEEDED
    assert final.attempt == 2
    assert final.submission_id == f"{job.id}-2"
    logs = service.logs(job.id, ADMIN)
    assert f"resumed from step={saved_step}" in logs
    assert "step=1500" in logs
