"""PostgreSQL stopped and started under running jobs (issue 9: outages are outages).

A private PostgreSQL cluster (the machine's own ``initdb``/``pg_ctl``, on a free port, in the
test's folder) so stopping it touches nobody else. The service runs for real: uvicorn, the
periodic cycles (``start_periodic``), the session's local Ray head and the worker runner.
While the database is down: requests that need it answer 503 with ``Retry-After`` (never 500),
``/healthz`` says ``unreachable`` without the driver's text, each cycle logs the outage once
(no traceback per tick), the jobs finish on Ray, and once it is back every finished job's
energy arrives.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from scheduler.bootstrap import RayEndpoint, build_service, start_api_thread
from scheduler.config import load_settings
from scheduler.dispatch.local_ray import LocalRayHead, free_port
from scheduler.domain import JobState, Role
from scheduler.periodic import start_periodic
from scheduler.store.migrate import upgrade

pytestmark = [pytest.mark.ray, pytest.mark.postgres]
TIMEOUT_S = (3.0, 10.0)
PG_BIN = next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin"))), None)


@dataclass
class PrivatePostgres:
    data: Path
    port: int

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _ctl(self, *args: str) -> None:
        assert PG_BIN is not None
        subprocess.run(
            [
                "runuser",
                "-u",
                "postgres",
                "--",
                str(PG_BIN / "pg_ctl"),
                "-D",
                str(self.data),
                "-w",
                "-t",
                "60",
                *args,
            ],
            check=True,
            capture_output=True,
            timeout=90,
        )

    def start(self) -> None:
        opts = f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._ctl("-o", opts, "-l", str(self.data / "server.log"), "start")

    def stop(self) -> None:
        self._ctl("-m", "fast", "stop")


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    if PG_BIN is None or os.geteuid() != 0 or shutil.which("runuser") is None:
        pytest.skip("needs the PostgreSQL server binaries and root (to run them as postgres)")
    root = Path(
        subprocess.run(
            ["mktemp", "-d", "/tmp/gl-pg-XXXXXX"], check=True, capture_output=True, text=True
        ).stdout.strip()
    )
    shutil.chown(root, "postgres", "postgres")
    pg = PrivatePostgres(data=root / "data", port=free_port())
    subprocess.run(
        [
            "runuser",
            "-u",
            "postgres",
            "--",
            str(PG_BIN / "initdb"),
            "-D",
            str(pg.data),
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    pg.start()
    try:
        yield pg
    finally:
        # Immediate: the test is over, nothing in it needs a clean shutdown.
        subprocess.run(
            [
                "runuser",
                "-u",
                "postgres",
                "--",
                str(PG_BIN / "pg_ctl"),
                "-D",
                str(pg.data),
                "-m",
                "immediate",
                "stop",
            ],
            capture_output=True,
            check=False,
            timeout=60,
        )
        shutil.rmtree(root, ignore_errors=True)


def _wait(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def test_database_outage_answers_503_logs_once_and_loses_no_energy(
    private_postgres: PrivatePostgres,
    ray_cluster: LocalRayHead,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    upgrade(private_postgres.url)
    port = free_port()
    settings = load_settings(
        database_url=private_postgres.url,
        api_port=port,
        plan_interval_s=2,
        dispatch_interval_s=1,
        reconcile_interval_s=1,
    )
    service = build_service(settings, ray=RayEndpoint(ray_cluster.dashboard_url))
    service.refresh_forecasts()
    server = start_api_thread(service, "127.0.0.1", port)
    cycles = start_periodic(service, settings)
    secret, _ = service.create_token(tenant="acme", role=Role.USER)
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {secret}"
    try:
        job_ids = []
        for n in range(2):
            now = datetime.now(UTC)
            body = {
                "name": f"sleeper-{n}",
                "home_region": "eu-central",
                "entrypoint": f'{sys.executable} -c "import time; time.sleep(6)"',
                "expected_duration_s": 60,
                "resources": {"gpus": 0, "cpus": 0.5},
                # Under one slot of slack: the planner must start it now.
                "deadline": (now + timedelta(seconds=90)).isoformat(),
            }
            created = session.post(f"{server.url}/v1/jobs", json=body, timeout=TIMEOUT_S)
            assert created.status_code == 201, created.text
            job_ids.append(created.json()["id"])

        def all_running() -> bool:
            states = {service.ctx.store.get_job(j).state for j in job_ids}
            return states <= {JobState.RUNNING, JobState.SUCCEEDED}

        _wait(all_running, 120, "both jobs running on Ray")

        with caplog.at_level(logging.INFO):
            private_postgres.stop()
            down_at = time.monotonic()
            submit = session.post(f"{server.url}/v1/jobs", json=body, timeout=TIMEOUT_S)
            listing = session.get(f"{server.url}/v1/jobs", timeout=TIMEOUT_S)
            health = requests.get(f"{server.url}/healthz", timeout=TIMEOUT_S)
            # The runs finish on Ray while the database is down; their runners keep retrying.
            time.sleep(max(0.0, 15.0 - (time.monotonic() - down_at)))
            private_postgres.start()
            _wait(
                lambda: (
                    {service.ctx.store.get_job(j).state for j in job_ids} == {JobState.SUCCEEDED}
                ),
                150,
                "both jobs succeeded after the outage",
            )

        for response in (submit, listing):
            assert response.status_code == 503, response.text
            assert int(response.headers["retry-after"]) > 0
            assert response.json()["detail"]
        assert health.status_code == 503
        assert health.json()["database"] == "unreachable"
        assert "postgres" not in health.text.lower().replace('"database"', "")

        # Each finished job's energy arrived, exactly once per device and interval.
        for job_id in job_ids:
            reports = service.ctx.store.energy_reports([job_id])
            assert reports, f"{job_id} lost its energy to the outage"
            assert sum(r.energy_j for r in reports) > 0
            keys = [(r.attempt, r.device, r.interval_start) for r in reports]
            assert len(keys) == len(set(keys))
            job = service.ctx.store.get_job(job_id)
            assert job.finished_at is not None
            assert max(r.interval_end for r in reports) >= job.finished_at - timedelta(seconds=60)

        # The outage was logged once per cycle when it began and once when it ended, and
        # no cycle logged a traceback for it.
        periodic = [r for r in caplog.records if r.name == "scheduler.periodic"]
        assert not [r for r in periodic if r.exc_info], "a cycle logged a traceback"
        messages = [r.getMessage() for r in periodic]
        began = Counter(m.split()[1].rstrip(":") for m in messages if "database unreachable" in m)
        ended = Counter(m.split()[1].rstrip(":") for m in messages if "reachable again" in m)
        assert began, "no cycle logged the outage"
        assert set(began.values()) == {1}, began
        assert ended == began, (began, ended)
    finally:
        cycles.shutdown()
        server.stop()
        session.close()
