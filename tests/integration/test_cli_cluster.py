"""The CLI as a Ray or Slurm user drives it, against a running service on a real local Ray:
``submit --wait`` (exits with the job's code), ``--working-dir`` shipped through Ray's runtime
env, ``--runtime-env`` files, ``logs -f``, the ``stop``/``status`` aliases, and durations and
deadlines in shorthand."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from scheduler.bootstrap import RayEndpoint, build_service, start_api_thread
from scheduler.config import load_settings
from scheduler.dispatch.local_ray import LocalRayHead, free_port
from scheduler.domain import Role
from scheduler.periodic import start_periodic

pytestmark = pytest.mark.ray


@dataclass(frozen=True)
class Live:
    url: str
    token: str


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, ray_cluster: LocalRayHead) -> Iterator[Live]:
    """The API with its cycles running on short intervals, dispatching to the session head."""
    port = free_port()
    db = tmp_path_factory.mktemp("cli-cluster") / "greenlight.db"
    settings = load_settings(
        database_url=f"sqlite:///{db}",
        api_port=port,
        plan_interval_s=1.0,
        dispatch_interval_s=0.5,
        reconcile_interval_s=0.5,
    )
    service = build_service(settings, ray=RayEndpoint(ray_cluster.dashboard_url))
    service.refresh_forecasts()
    secret, _ = service.create_token(tenant="acme", role=Role.USER)
    server = start_api_thread(service, "127.0.0.1", port)
    cycles = start_periodic(service, settings)
    try:
        yield Live(url=server.url, token=secret)
    finally:
        cycles.shutdown(wait=False)
        server.stop()


def greenlight(
    live: Live, *args: str, cwd: Path | None = None, timeout_s: float = 150
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GREENLIGHT_")}
    env.update(GREENLIGHT_URL=live.url, GREENLIGHT_TOKEN=live.token, NO_COLOR="1")
    return subprocess.run(
        [sys.executable, "-m", "scheduler.cli.main", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


# Runs at once (policy now), deadline and duration in shorthand.
NOW = (
    "--home-region",
    "eu-central",
    "--policy",
    "now",
    "-t",
    "2m",
    "--deadline",
    "+1h",
    "--cpus",
    "0.5",
)


def test_submit_wait_follows_the_job_and_exits_with_its_code(live: Live) -> None:
    ok = greenlight(live, "submit", "--wait", *NOW, "--", "python", "-c", "print('hello')")
    failed = greenlight(
        live,
        "submit",
        "--wait",
        *NOW,
        "--",
        "python",
        "-c",
        "import sys; print('bye'); sys.exit(3)",
    )

    assert ok.returncode == 0, ok.stderr
    assert "hello" in ok.stdout
    assert "succeeded" in ok.stderr
    assert failed.returncode == 3, failed.stderr
    assert "bye" in failed.stdout
    assert "failed" in failed.stderr


def test_working_dir_and_runtime_env_file_ship_the_users_code(live: Live, tmp_path: Path) -> None:
    code = tmp_path / "project"
    code.mkdir()
    (code / "greeting.py").write_text("WORD = 'shipped-with-the-job'\n")
    renv = tmp_path / "renv.yaml"
    renv.write_text("env_vars:\n  GREETING_SUFFIX: from-runtime-env\n")
    # Submitted from another folder: the job can only import greeting from the upload.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    done = greenlight(
        live,
        "submit",
        "--wait",
        *NOW,
        "--working-dir",
        str(code),
        "--runtime-env",
        str(renv),
        "--",
        "python",
        "-c",
        "import os, greeting; print(greeting.WORD, os.environ['GREETING_SUFFIX'])",
        cwd=elsewhere,
    )

    assert done.returncode == 0, done.stdout + done.stderr
    assert "shipped-with-the-job from-runtime-env" in done.stdout


def test_logs_follow_and_the_ray_style_aliases(live: Live) -> None:
    submitted = greenlight(
        live,
        "submit",
        "--json",
        *NOW,
        "--",
        "python",
        "-c",
        "import time\nfor i in range(3):\n print('line', i, flush=True)\n time.sleep(1)",
    )
    assert submitted.returncode == 0, submitted.stderr
    job_id = json.loads(submitted.stdout)["id"]

    followed = greenlight(live, "logs", "-f", job_id)
    status = greenlight(live, "status", job_id, "--json")
    stop = greenlight(live, "stop", job_id)

    assert followed.returncode == 0, followed.stderr
    assert [f"line {i}" in followed.stdout for i in range(3)] == [True, True, True]
    assert json.loads(status.stdout)["state"] == "succeeded"
    assert stop.returncode != 0  # a finished job cannot be cancelled: one-line error
    assert stop.stderr.startswith("greenlight: error:")


def test_bad_shorthands_fail_in_one_line(live: Live, tmp_path: Path) -> None:
    bad_duration = greenlight(live, "submit", "-t", "ninety minutes", "--", "true")
    missing_dir = greenlight(
        live, "submit", *NOW, "--working-dir", str(tmp_path / "nope"), "--", "true"
    )

    assert bad_duration.returncode == 1
    assert "90m" in bad_duration.stderr
    assert missing_dir.returncode == 1
    assert "no such directory" in missing_dir.stderr


def _submit_json(live: Live, *args: str) -> str:
    done = greenlight(live, "submit", "--json", *NOW, *args)
    assert done.returncode == 0, done.stderr
    job_id: str = json.loads(done.stdout)["id"]
    return job_id


def _job(live: Live, job_id: str) -> dict[str, object]:
    done = greenlight(live, "status", job_id, "--json")
    assert done.returncode == 0, done.stderr
    job: dict[str, object] = json.loads(done.stdout)
    return job


def test_a_chain_of_three_runs_in_order_and_a_failed_parent_cancels_its_child(
    live: Live,
) -> None:
    step = ("--", "python", "-c", "import time; time.sleep(2)")
    first = _submit_json(live, "--name", "first", *step)
    second = _submit_json(live, "--name", "second", "--after", first, *step)
    third = _submit_json(live, "--name", "third", "--after", f"afterok:{second}", *step)
    broken = _submit_json(live, "--name", "broken", "--", "python", "-c", "raise SystemExit(4)")
    orphan = _submit_json(live, "--name", "orphan", "--after", broken, "--", "true")
    anyway = _submit_json(live, "--name", "anyway", "--after", f"afterany:{broken}", *step)

    assert greenlight(live, "logs", "-f", third).returncode == 0
    assert greenlight(live, "logs", "-f", anyway).returncode == 0

    jobs = {job_id: _job(live, job_id) for job_id in (first, second, third, broken, orphan)}
    assert [jobs[j]["state"] for j in (first, second, third)] == ["succeeded"] * 3
    assert str(jobs[first]["finished_at"]) <= str(jobs[second]["started_at"])
    assert str(jobs[second]["finished_at"]) <= str(jobs[third]["started_at"])
    assert jobs[broken]["state"] == "failed"
    assert jobs[orphan]["state"] == "cancelled"
    assert broken in str(jobs[orphan]["message"])
    assert jobs[second]["after"] == [{"job_id": first, "kind": "afterok"}]
    unknown = greenlight(live, "submit", *NOW, "--after", "j-nope", "--", "true")
    assert unknown.returncode == 1
    assert "after" in unknown.stderr


def test_an_array_can_be_a_parent(live: Live) -> None:
    made = greenlight(
        live,
        "submit",
        "--json",
        *NOW,
        "--array",
        "0-1",
        "--",
        "python",
        "-c",
        "import time; time.sleep(1)",
    )
    assert made.returncode == 0, made.stderr
    group_id = json.loads(made.stdout)["group_id"]

    child = _submit_json(live, "--name", "after-array", "--after", group_id, "--", "true")
    assert greenlight(live, "logs", "-f", child).returncode == 0

    job = _job(live, child)
    members = {d["job_id"] for d in job["after"]}  # type: ignore[union-attr]
    assert len(members) == 2
    ends = [str(_job(live, m)["finished_at"]) for m in members]
    assert job["state"] == "succeeded"
    assert max(ends) <= str(job["started_at"])
