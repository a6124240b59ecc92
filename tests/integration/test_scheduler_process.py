"""The API and the cycles in separate processes, for real (issue 8, item 3).

``greenlight serve --no-cycles`` and ``greenlight scheduler`` as two processes on one database
(SQLite and PostgreSQL) and the session's real local Ray: a job submitted to the API is planned
within a second or so although the plan interval is ten minutes (the arrival woke the other
process), dispatched and run on Ray; /healthz and /metrics report the scheduler's cycles. The
default ``greenlight serve`` spawns its scheduler as a child, which goes when it goes, by
SIGTERM or SIGKILL.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
import requests

from scheduler.bootstrap import create_token
from scheduler.config import load_settings
from scheduler.dispatch.local_ray import LocalRayHead, free_port
from scheduler.domain import Role

pytestmark = pytest.mark.ray
START_TIMEOUT_S = 120.0
HTTP_TIMEOUT_S = (3.0, 30.0)


def _env(database_url: str, port: int, ray: LocalRayHead) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GREENLIGHT_")}
    env.update(
        GREENLIGHT_DATABASE_URL=database_url,
        GREENLIGHT_API_PORT=str(port),
        GREENLIGHT_RAY_ADDRESS=ray.dashboard_url,
        GREENLIGHT_LOG_FORMAT="text",
        GREENLIGHT_LOG_LEVEL="INFO",
        # Ten minutes: a job planned within seconds was planned because its arrival woke
        # the planner across processes, not by the interval.
        GREENLIGHT_PLAN_INTERVAL_S="600",
    )
    return env


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "scheduler.cli.main", *args],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=out,
            start_new_session=True,
        )


def _stop(proc: subprocess.Popen[bytes]) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise
    return proc.returncode


def _wait_for(what: str, check: object, logs: list[Path], timeout_s: float) -> object:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            got = check()  # type: ignore[operator]
        except requests.RequestException:
            got = None
        if got:
            return got
        time.sleep(0.2)
    tails = "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in logs if p.exists())
    raise AssertionError(f"{what} within {timeout_s} s\n{tails}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its parent) counts as gone.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


@pytest.fixture
def split(
    database_url: str, ray_cluster: LocalRayHead, tmp_path: Path
) -> Iterator[tuple[str, str, str, list[Path]]]:
    """(api url, user token, admin token, log files) with both processes running."""
    port = free_port()
    env = _env(database_url, port, ray_cluster)
    settings = load_settings(database_url=database_url)
    user, _ = create_token(settings, tenant="acme", role=Role.USER)  # migrates the database
    admin, _ = create_token(settings, tenant="ops", role=Role.ADMIN)
    logs = [tmp_path / "api.log", tmp_path / "scheduler.log"]
    api = _start(["serve", "--no-cycles"], env, logs[0])
    scheduler = _start(["scheduler"], env, logs[1])
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for(
            "the API and the scheduler's first heartbeat",
            lambda: (
                (requests.get(f"{url}/healthz", timeout=HTTP_TIMEOUT_S).json())
                .get("scheduler", {})
                .get("status")
                == "ok"
            ),
            logs,
            START_TIMEOUT_S,
        )
        yield url, user, admin, logs
    finally:
        codes = (_stop(api), _stop(scheduler))
    assert codes == (128 + signal.SIGTERM,) * 2, codes  # both stopped by SIGTERM, cleanly


def test_a_job_submitted_to_the_api_is_planned_and_run_by_the_scheduler_process(
    split: tuple[str, str, str, list[Path]],
) -> None:
    url, user, admin, logs = split
    headers = {"Authorization": f"Bearer {user}"}
    body = {
        "name": "split",
        "home_region": "eu-central",
        "entrypoint": f"{sys.executable} -c \"print('split-ok')\"",
        "expected_duration_s": 60,
        "resources": {"gpus": 0, "cpus": 1},
        "policy": "now",
    }
    created = requests.post(f"{url}/v1/jobs", json=body, headers=headers, timeout=HTTP_TIMEOUT_S)
    assert created.status_code == 201, created.text
    job_id = created.json()["id"]

    def job() -> dict[str, object]:
        got: dict[str, object] = requests.get(
            f"{url}/v1/jobs/{job_id}", headers=headers, timeout=HTTP_TIMEOUT_S
        ).json()
        return got

    final = _wait_for(
        "the job to finish on Ray",
        lambda: (j := job())["state"] in {"succeeded", "failed"} and j,
        logs,
        120.0,
    )
    assert final["state"] == "succeeded", final  # type: ignore[index]
    events = requests.get(
        f"{url}/v1/jobs/{job_id}/events", headers=headers, timeout=HTTP_TIMEOUT_S
    ).json()["data"]
    at = {e["to_state"]: datetime.fromisoformat(e["at"]) for e in events if e["to_state"]}
    assert {"pending", "planned", "dispatched", "running", "succeeded"} <= at.keys(), at
    # Planned by the arrival's wake-up (the interval is 600 s), and handed to Ray at once.
    assert (at["planned"] - at["pending"]).total_seconds() < 5.0, at
    assert (at["dispatched"] - at["planned"]).total_seconds() < 5.0, at
    logs_text = requests.get(
        f"{url}/v1/jobs/{job_id}/logs", headers=headers, timeout=HTTP_TIMEOUT_S
    ).json()["logs"]
    assert "split-ok" in logs_text

    metrics = requests.get(
        f"{url}/metrics", headers={"Authorization": f"Bearer {admin}"}, timeout=HTTP_TIMEOUT_S
    ).text
    plans = re.search(r"^greenlight_plan_cycles_total (\S+)$", metrics, re.M)
    assert plans is not None
    assert float(plans.group(1)) >= 2  # the start-up cycle and the one the arrival woke
    assert 'greenlight_cycle_duration_seconds_count{cycle="plan"}' in metrics
    assert "scheduler.periodic" not in logs[0].read_text()  # no cycle ran in the API


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc")
def test_serve_spawns_its_scheduler_and_takes_it_down_with_it(
    sqlite_url: str, ray_cluster: LocalRayHead, tmp_path: Path
) -> None:
    port = free_port()
    env = _env(sqlite_url, port, ray_cluster)
    logs = [tmp_path / "serve.log"]
    for stop_signal in (signal.SIGTERM, signal.SIGKILL):
        serve = _start(["serve"], env, logs[0])
        try:
            found = _wait_for(
                "serve's scheduler process",
                lambda: re.search(r"scheduler process started \(pid (\d+)\)", logs[0].read_text()),
                logs,
                START_TIMEOUT_S,
            )
            child = int(found.group(1))  # type: ignore[attr-defined]
            _wait_for(
                "the child's first heartbeat",
                lambda: (
                    requests.get(f"http://127.0.0.1:{port}/healthz", timeout=HTTP_TIMEOUT_S)
                    .json()
                    .get("scheduler", {})
                    .get("status")
                    == "ok"
                ),
                logs,
                START_TIMEOUT_S,
            )
            assert _alive(child)
            serve.send_signal(stop_signal)
            serve.wait(timeout=60)
            # SIGTERM: serve stops it before exiting; SIGKILL: it notices its parent is gone.
            _wait_for("the scheduler to exit", lambda child=child: not _alive(child), logs, 10.0)
        finally:
            if serve.poll() is None:
                os.killpg(serve.pid, signal.SIGKILL)
