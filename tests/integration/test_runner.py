"""The runner as a real subprocess against a real HTTP server on loopback that collects its
energy reports; and the reporter in-process against the same server."""

from __future__ import annotations

import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from workers.intervals import IntervalReport
from workers.reporter import ApiTarget, EnergyReporter, RetryPolicy

REPO = Path(__file__).resolve().parents[2]
JOB_ID = "job-42"
TOKEN = "tok-secret"
POWER_ENV = {
    "GREENLIGHT_GPUS": "1",
    "GREENLIGHT_CPUS": "2",
    "GREENLIGHT_GPU_POWER_W": "100",
    "GREENLIGHT_CPU_CORE_POWER_W": "10",
    "GREENLIGHT_BASE_POWER_W": "5",
}
POWER_W = {"estimate:gpu": 100.0, "estimate:cpu": 20.0, "estimate:base": 5.0}


@dataclass
class Post:
    path: str
    authorization: str | None
    reports: list[dict[str, Any]]
    status: int


class Collector(ThreadingHTTPServer):
    """The energy endpoint's contract: dedupe by (job, attempt, device, interval_start).
    ``fail_next`` answers 500 that many times; ``status`` forces every answer."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), CollectorHandler)
        self.lock = threading.Lock()
        self.posts: list[Post] = []
        self.stored: dict[tuple[str, int, str, str], dict[str, Any]] = {}
        self.fail_next = 0
        self.status: int | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def accepted(self) -> list[dict[str, Any]]:
        with self.lock:
            return sorted(self.stored.values(), key=lambda r: (r["device"], r["interval_start"]))


class CollectorHandler(BaseHTTPRequestHandler):
    server: Collector

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        job_id = self.path.split("/")[3]
        answer: dict[str, Any]
        with self.server.lock:
            if self.server.fail_next > 0:
                self.server.fail_next -= 1
                status, answer = 500, {"detail": "scripted failure"}
            elif self.server.status is not None:
                status, answer = self.server.status, {"detail": "scripted"}
            else:
                status, answer = 200, self._store(job_id, body["reports"])
            self.server.posts.append(
                Post(self.path, self.headers.get("Authorization"), body["reports"], status)
            )
        payload = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _store(self, job_id: str, reports: list[dict[str, Any]]) -> dict[str, int]:
        accepted = duplicates = 0
        for report in reports:
            key = (job_id, report["attempt"], report["device"], report["interval_start"])
            if key in self.server.stored:
                duplicates += 1
            else:
                self.server.stored[key] = report
                accepted += 1
        return {"accepted": accepted, "duplicates": duplicates}

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def collector() -> Iterator[Collector]:
    server = Collector()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


def runner_env(collector: Collector | None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GREENLIGHT_")}
    env.update(POWER_ENV)
    env["GREENLIGHT_NODE"] = "node-7"
    if collector is not None:
        env.update(
            {
                "GREENLIGHT_API_URL": collector.url,
                "GREENLIGHT_JOB_ID": JOB_ID,
                "GREENLIGHT_TOKEN": TOKEN,
                "GREENLIGHT_ATTEMPT": "2",
            }
        )
    env.update(extra)
    return env


def start_runner(
    flags: Sequence[str], entrypoint: Sequence[str], env: Mapping[str, str]
) -> subprocess.Popen[str]:
    argv = [
        sys.executable,
        "-m",
        "workers.runner",
        "--meter",
        "estimate",
        *flags,
        "--",
        *entrypoint,
    ]
    return subprocess.Popen(
        argv, cwd=REPO, env=dict(env), text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def run_runner(
    flags: Sequence[str], entrypoint: Sequence[str], env: Mapping[str, str]
) -> tuple[int, str, str]:
    process = start_runner(flags, entrypoint, env)
    out, err = process.communicate(timeout=60)
    return process.returncode, out, err


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def by_device(reports: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    devices: dict[str, list[dict[str, Any]]] = {}
    for report in sorted(reports, key=lambda r: r["interval_start"]):
        devices.setdefault(report["device"], []).append(report)
    return devices


def assert_contiguous_and_estimated(reports: list[dict[str, Any]]) -> float:
    """Every device's intervals chain without gaps and hold power x duration; returns the
    covered duration in seconds."""
    devices = by_device(reports)
    assert set(devices) == set(POWER_W)
    spans = set()
    for device, series in devices.items():
        for earlier, later in itertools.pairwise(series):
            assert earlier["interval_end"] == later["interval_start"], device
        for report in series:
            start = datetime.fromisoformat(report["interval_start"])
            end = datetime.fromisoformat(report["interval_end"])
            assert start.utcoffset() == timedelta(0)
            assert end > start
            duration_s = (end - start).total_seconds()
            assert report["energy_j"] == pytest.approx(
                POWER_W[device] * duration_s, rel=1e-3, abs=0.05
            )
        spans.add((series[0]["interval_start"], series[-1]["interval_end"]))
    (span,) = spans
    covered_s = datetime.fromisoformat(span[1]) - datetime.fromisoformat(span[0])
    for device, series in devices.items():
        total_j = sum(r["energy_j"] for r in series)
        assert total_j == pytest.approx(
            POWER_W[device] * covered_s.total_seconds(), rel=1e-3, abs=0.1
        )
    return covered_s.total_seconds()


def test_reports_arrive_for_the_job_and_the_exit_code_propagates(collector: Collector) -> None:
    child = python(
        "import os, time; print('token', os.environ.get('GREENLIGHT_TOKEN'));"
        "print('job', os.environ.get('GREENLIGHT_JOB_ID'), flush=True);"
        "time.sleep(1.6); raise SystemExit(3)"
    )
    code, out, err = run_runner(["--interval-s", "0.4"], child, runner_env(collector))
    assert code == 3, err
    assert "token None" in out, "the per-job token must not leak into the user's process"
    assert f"job {JOB_ID}" in out
    assert collector.posts
    for post in collector.posts:
        assert post.path == f"/v1/jobs/{JOB_ID}/energy"
        assert post.authorization == f"Bearer {TOKEN}"
    reports = collector.accepted()
    assert {(r["attempt"], r["node"], r["method"]) for r in reports} == {(2, "node-7", "estimate")}
    assert len(by_device(reports)["estimate:gpu"]) >= 3, "periodic reports, then a final one"
    assert assert_contiguous_and_estimated(reports) >= 1.6
    summary = [json.loads(line) for line in err.splitlines() if '"summary"' in line]
    assert summary[0]["exit_code"] == 3
    assert summary[0]["reports"]["accepted"] == len(reports)


def test_failed_post_is_resent_with_the_same_intervals(collector: Collector) -> None:
    collector.fail_next = 2
    code, _, err = run_runner(
        ["--interval-s", "0.3"], python("import time; time.sleep(1.2)"), runner_env(collector)
    )
    assert code == 0, err
    failed = [r for p in collector.posts if p.status == 500 for r in p.reports]
    assert failed, "the first posts were refused"
    accepted = {(r["device"], r["interval_start"]): r for r in collector.accepted()}
    for report in failed:
        assert accepted[(report["device"], report["interval_start"])] == report
    assert_contiguous_and_estimated(collector.accepted())


def test_api_down_never_fails_the_job() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    env = runner_env(
        None,
        GREENLIGHT_API_URL=f"http://127.0.0.1:{closed_port}",
        GREENLIGHT_JOB_ID=JOB_ID,
        GREENLIGHT_TOKEN=TOKEN,
    )
    code, _, err = run_runner(
        ["--interval-s", "0.2", "--flush-timeout-s", "0.5"],
        python("import time; time.sleep(0.5)"),
        env,
    )
    assert code == 0
    assert "gave up on" in err
    assert "reports_abandoned" in err


def test_refused_token_stops_reporting_but_not_the_job(collector: Collector) -> None:
    collector.status = 401
    code, _, err = run_runner(
        ["--interval-s", "0.2"], python("import time; time.sleep(0.8)"), runner_env(collector)
    )
    assert code == 0
    assert len(collector.posts) == 1
    assert "reporting stops" in err


def test_local_run_prints_a_summary(tmp_path: Path) -> None:
    code, out, err = run_runner([], ["echo hello from the job"], runner_env(None))
    assert code == 0
    assert out == "hello from the job\n"
    assert "greenlight runner: exit 0 after" in err
    assert "estimate:gpu" in err


def test_child_killed_by_a_signal_exits_128_plus_signal() -> None:
    code, _, _ = run_runner([], ["kill -KILL $$"], runner_env(None))
    assert code == 128 + signal.SIGKILL


def test_missing_command_exits_127() -> None:
    code, _, err = run_runner([], ["/nonexistent/binary", "--flag"], runner_env(None))
    assert code == 127
    assert "cannot start" in err


def test_sigterm_reaches_the_command_and_the_final_report_is_sent(
    collector: Collector,
) -> None:
    script = "trap 'echo got-term; exit 7' TERM; echo ready; while :; do sleep 0.05; done"
    process = start_runner(["--interval-s", "30"], [script], runner_env(collector))
    assert process.stdout is not None
    assert process.stdout.readline() == "ready\n"
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 7, err
    assert "got-term" in out
    assert "signals" in err
    assert len(by_device(collector.accepted())["estimate:gpu"]) == 1, "the final report"


def test_a_command_ignoring_sigterm_is_killed_after_the_grace_period() -> None:
    script = "trap '' TERM; echo ready; sleep 60"
    process = start_runner(["--stop-grace-s", "0.5"], [script], runner_env(None))
    assert process.stdout is not None
    assert process.stdout.readline() == "ready\n"
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGKILL, err
    assert "killing it" in err


# -- the reporter in-process -------------------------------------------------------------


def make_reports(count: int) -> list[IntervalReport]:
    start = datetime(2024, 1, 1, tzinfo=UTC)
    return [
        IntervalReport(
            attempt=1,
            node="n",
            device="estimate:cpu",
            interval_start=start + timedelta(seconds=i),
            interval_end=start + timedelta(seconds=i + 1),
            energy_j=1.0,
            method="estimate",
        )
        for i in range(count)
    ]


def target(collector: Collector) -> ApiTarget:
    return ApiTarget(api_url=collector.url, job_id=JOB_ID, token=TOKEN)


def test_reporter_sends_in_batches(collector: Collector) -> None:
    reporter = EnergyReporter(target(collector), policy=RetryPolicy(batch_max=2))
    reporter.submit(make_reports(5))
    stats = reporter.close(5.0)
    assert [len(p.reports) for p in collector.posts] == [2, 2, 1]
    assert (stats.accepted, stats.duplicates, stats.dropped) == (5, 0, 0)


def test_reporter_resends_are_counted_as_duplicates_not_twice(collector: Collector) -> None:
    reports = make_reports(3)
    first = EnergyReporter(target(collector))
    first.submit(reports)
    first.close(5.0)
    again = EnergyReporter(target(collector))
    again.submit(reports)
    stats = again.close(5.0)
    assert (stats.accepted, stats.duplicates) == (0, 3)
    assert len(collector.accepted()) == 3


def test_reporter_drops_a_rejected_batch_and_carries_on(collector: Collector) -> None:
    collector.status = 422
    reporter = EnergyReporter(target(collector), policy=RetryPolicy(batch_max=2))
    reporter.submit(make_reports(3))
    stats = reporter.close(5.0)
    assert len(collector.posts) == 2
    assert stats.dropped == 3


def test_reporter_buffer_is_bounded(collector: Collector) -> None:
    collector.status = 503
    reporter = EnergyReporter(
        target(collector), policy=RetryPolicy(buffer_max=4, initial_s=0.05, max_s=0.05)
    )
    reporter.submit(make_reports(10))
    stats = reporter.close(0.3)
    assert stats.accepted == 0
    assert stats.dropped == 10
    assert stats.failed_posts >= 1
    assert {len(p.reports) for p in collector.posts} <= {4}
