"""RayDispatcher and LocalRayHead against a real local Ray head (no mocks).

The session head (fixture ``ray_cluster``) has 2 CPUs, no GPU and the custom resource
``TEST_NODE_LABEL``. Every test uses unique submission ids, since the head is shared.
"""

from __future__ import annotations

import json
import re
import socket
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from ray.job_submission import JobDetails, JobStatus, JobSubmissionClient, JobType

from scheduler.dispatch.local_ray import LocalRayHead, free_port
from scheduler.dispatch.ray_jobs import RayDispatcher, run_info
from scheduler.domain import DispatchError, Region
from scheduler.domain.runs import RunInfo, RunStatus
from tests.ray_cluster import TEST_NODE_LABEL, start_test_head

WAIT_S = 90.0  # a guard against hanging, not a performance assertion
TERMINAL = {RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.STOPPED}
ORDER = [RunStatus.PENDING, RunStatus.RUNNING, RunStatus.SUCCEEDED]


def _region(*, ray_address: str | None = None, node_label: str | None = None) -> Region:
    return Region(
        name="test",
        grid_zone="DE",
        provider="replay",
        gpus=0,
        ray_address=ray_address,
        node_label=node_label,
    )


def _sid(tag: str) -> str:
    return f"{tag}-{uuid.uuid4().hex[:10]}-1"


def _py(code: str) -> str:
    """A shell entrypoint running ``code`` with the head's Python (json-quoted for the shell)."""
    return f"python -c {json.dumps(code)}"


def _wait(
    dispatcher: RayDispatcher, region: Region, sid: str, done: Callable[[RunInfo], bool]
) -> tuple[RunInfo, list[RunStatus]]:
    """Poll until ``done``; returns the last info and every distinct status seen, in order."""
    seen: list[RunStatus] = []
    deadline = time.monotonic() + WAIT_S
    while True:
        info = dispatcher.status(region, sid)
        if not seen or seen[-1] is not info.status:
            seen.append(info.status)
        if done(info):
            return info, seen
        if time.monotonic() > deadline:
            raise AssertionError(f"{sid} never reached the awaited state; saw {seen}: {info}")
        time.sleep(0.2)


def _finished(info: RunInfo) -> bool:
    return info.status in TERMINAL


@pytest.fixture
def dispatcher(ray_cluster: LocalRayHead) -> RayDispatcher:
    """A dispatcher whose default address is the session head."""
    return RayDispatcher(ray_cluster.dashboard_url)


@pytest.fixture
def region() -> Region:
    """A region with no address of its own: it runs on the dispatcher's default cluster."""
    return _region()


@pytest.mark.ray
def test_submit_runs_entrypoint_with_env_and_succeeds(
    dispatcher: RayDispatcher,
    region: Region,
) -> None:
    sid = _sid("env")
    env = {"GREENLIGHT_JOB_ID": "job-42", "GREENLIGHT_ATTEMPT": "3", "GL_NOTE": "hello world"}
    code = (
        "import os, sys; print('env', os.environ['GREENLIGHT_JOB_ID'], "
        "os.environ['GREENLIGHT_ATTEMPT'], os.environ['GL_NOTE'], sep='|'); "
        "print('python', sys.prefix)"
    )

    dispatcher.submit(region, sid, _py(code), env=env, gpus=0, cpus=0.5, memory_mb=64)
    info, seen = _wait(dispatcher, region, sid, _finished)

    assert info.status is RunStatus.SUCCEEDED, info
    assert info.exit_code == 0
    assert seen == sorted(seen, key=ORDER.index), f"status went backwards: {seen}"
    assert info.started_at is not None
    assert info.finished_at is not None
    assert info.started_at.utcoffset() == info.finished_at.utcoffset() == timedelta(0)
    assert info.started_at <= info.finished_at <= datetime.now(UTC)
    logs = dispatcher.logs(region, sid)
    assert "env|job-42|3|hello world" in logs
    # LocalRayHead puts this interpreter first on PATH, so `python` in entrypoints is ours.
    assert f"python {sys.prefix}" in logs


@pytest.mark.ray
def test_working_dir_is_shipped_with_the_job(
    dispatcher: RayDispatcher,
    region: Region,
    tmp_path: Path,
) -> None:
    (tmp_path / "job_script.py").write_text("print('from the working dir', 6 * 7)\n")
    sid = _sid("wd")

    dispatcher.submit(
        region,
        sid,
        "python job_script.py",
        env={},
        gpus=0,
        cpus=0.5,
        memory_mb=0,
        working_dir=str(tmp_path),
    )
    info, _ = _wait(dispatcher, region, sid, _finished)

    assert info.status is RunStatus.SUCCEEDED, info
    assert "from the working dir 42" in dispatcher.logs(region, sid)


@pytest.mark.ray
def test_the_jobs_runtime_env_reaches_ray_with_the_worker_env_merged(
    ray_cluster: LocalRayHead,
    dispatcher: RayDispatcher,
    region: Region,
    tmp_path: Path,
) -> None:
    (tmp_path / "keep.txt").write_text("kept")
    (tmp_path / "secret.txt").write_text("must not be uploaded")
    sid = _sid("renv")
    runtime_env = {"excludes": ["secret.txt"], "env_vars": {"FROM_JOB": "job", "BOTH": "job"}}
    odd = "a b'c; $HOME\nnext"  # quoted through the shell as it is

    dispatcher.submit(
        region,
        sid,
        _py(
            "import os; print(sorted(os.listdir('.')), os.environ['FROM_JOB'], os.environ['BOTH'],"
            " repr(os.environ['GREENLIGHT_ODD']))"
        ),
        env={"BOTH": "worker", "GREENLIGHT_ODD": odd},
        gpus=0,
        cpus=0.5,
        memory_mb=0,
        working_dir=str(tmp_path),
        runtime_env=runtime_env,
    )
    info, _ = _wait(dispatcher, region, sid, _finished)

    assert info.status is RunStatus.SUCCEEDED, info
    assert f"['keep.txt'] job worker {odd!r}" in dispatcher.logs(region, sid)
    # The worker's variables differ for every job: exported by the entrypoint, they do not
    # make Ray set up a runtime env per job. The job's own runtime env reaches Ray as given.
    recorded = JobSubmissionClient(ray_cluster.dashboard_url).get_job_info(sid)
    assert (recorded.runtime_env or {}).get("env_vars") == {"FROM_JOB": "job", "BOTH": "job"}
    assert recorded.entrypoint.startswith("export BOTH=worker GREENLIGHT_ODD=")


@pytest.mark.ray
def test_failing_entrypoint_is_failed_with_its_exit_code(
    dispatcher: RayDispatcher,
    region: Region,
) -> None:
    sid = _sid("fail")
    dispatcher.submit(
        region,
        sid,
        _py("import sys; print('about to fail'); sys.exit(3)"),
        env={},
        gpus=0,
        cpus=0.5,
        memory_mb=0,
    )
    info, _ = _wait(dispatcher, region, sid, _finished)

    assert info.status is RunStatus.FAILED
    assert info.exit_code == 3
    assert "exit code 3" in info.message
    assert info.finished_at is not None
    assert "about to fail" in dispatcher.logs(region, sid)


@pytest.mark.ray
def test_duplicate_submission_id_runs_once(
    ray_cluster: LocalRayHead,
    dispatcher: RayDispatcher,
    region: Region,
    tmp_path: Path,
) -> None:
    counter = tmp_path / "runs.txt"
    sid = _sid("dup")
    first = _py(f"open({str(counter)!r}, 'a').write('first\\n')")
    second = _py(f"open({str(counter)!r}, 'a').write('second\\n')")

    dispatcher.submit(region, sid, first, env={}, gpus=0, cpus=0.5, memory_mb=0)
    # A retry right away (e.g. a lost response) and one after the run finished, even from a
    # fresh dispatcher (a restarted service), must not start anything new.
    dispatcher.submit(region, sid, second, env={}, gpus=0, cpus=0.5, memory_mb=0)
    info, _ = _wait(dispatcher, region, sid, _finished)
    RayDispatcher(ray_cluster.dashboard_url).submit(
        region, sid, second, env={}, gpus=0, cpus=0.5, memory_mb=0
    )

    assert info.status is RunStatus.SUCCEEDED, info
    assert counter.read_text() == "first\n"
    jobs = JobSubmissionClient(ray_cluster.dashboard_url).list_jobs()
    assert [j.entrypoint for j in jobs if j.submission_id == sid] == [first]


@pytest.mark.ray
def test_stop_a_running_job(dispatcher: RayDispatcher, region: Region) -> None:
    sid = _sid("stop")
    dispatcher.submit(
        region,
        sid,
        _py("import time; print('started', flush=True); time.sleep(300)"),
        env={},
        gpus=0,
        cpus=0.5,
        memory_mb=0,
    )
    _wait(dispatcher, region, sid, lambda i: i.status is RunStatus.RUNNING)

    assert dispatcher.stop(region, sid) is True
    info, _ = _wait(dispatcher, region, sid, _finished)

    assert info.status is RunStatus.STOPPED
    assert info.finished_at is not None
    assert dispatcher.stop(region, sid) is False  # already over


@pytest.mark.ray
def test_unknown_submission(dispatcher: RayDispatcher, region: Region) -> None:
    sid = _sid("never-submitted")

    info = dispatcher.status(region, sid)

    assert info.status is RunStatus.UNKNOWN
    assert sid in info.message
    assert dispatcher.logs(region, sid) == ""
    assert dispatcher.stop(region, sid) is False


@pytest.mark.ray
def test_gpu_job_stays_pending_until_stopped(
    dispatcher: RayDispatcher,
    region: Region,
) -> None:
    gpu_sid, label_sid, cpu_sid = _sid("gpu"), _sid("label"), _sid("cpu")
    missing_label = _region(node_label="no-such-node-group")
    labelled = _region(node_label=TEST_NODE_LABEL)
    dispatcher.submit(region, gpu_sid, "echo never", env={}, gpus=1, cpus=0, memory_mb=0)
    dispatcher.submit(missing_label, label_sid, "echo never", env={}, gpus=0, cpus=0, memory_mb=0)
    dispatcher.submit(labelled, cpu_sid, "echo labelled-ok", env={}, gpus=0, cpus=0.5, memory_mb=0)
    # The labelled job was submitted after the other two and has finished: the cluster had
    # every chance to start them, and did not.
    cpu_info, _ = _wait(dispatcher, labelled, cpu_sid, _finished)
    assert cpu_info.status is RunStatus.SUCCEEDED
    assert "labelled-ok" in dispatcher.logs(labelled, cpu_sid)
    for reg, sid in [(region, gpu_sid), (missing_label, label_sid)]:
        pending = dispatcher.status(reg, sid)
        assert pending.status is RunStatus.PENDING, pending
        assert pending.started_at is None

    now = datetime.now(UTC)
    assert not dispatcher.stop_if_pending_too_long(region, gpu_sid, max_pending_s=3600, now=now)
    assert dispatcher.stop_if_pending_too_long(region, gpu_sid, max_pending_s=0, now=now)
    assert dispatcher.stop(missing_label, label_sid) is True

    for reg, sid in [(region, gpu_sid), (missing_label, label_sid)]:
        info, _ = _wait(dispatcher, reg, sid, _finished)
        assert info.status is RunStatus.STOPPED
        assert info.exit_code is None  # it never ran
        assert "never" not in dispatcher.logs(reg, sid).splitlines()


def test_unreachable_address_raises_dispatch_error() -> None:
    address = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    dead = _region(ray_address=address)
    dispatcher = RayDispatcher(connect_timeout_s=2.0, read_timeout_s=2.0)

    with pytest.raises(DispatchError, match=re.escape(f"cannot reach Ray at {address}")):
        dispatcher.submit(dead, _sid("dead"), "echo hi", env={}, gpus=0, cpus=1, memory_mb=0)
    with pytest.raises(DispatchError, match=re.escape(address)):
        dispatcher.status(dead, "x-1")
    with pytest.raises(DispatchError, match=re.escape(address)):
        dispatcher.stop(dead, "x-1")


@pytest.mark.timeout(30)
def test_silent_server_times_out_instead_of_hanging() -> None:
    """Ray's own client sends requests without a timeout; ours must not hang on a peer that
    accepts connections and never answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)  # the kernel completes handshakes; nobody ever replies
        address = f"http://127.0.0.1:{server.getsockname()[1]}"
        dispatcher = RayDispatcher(connect_timeout_s=1.0, read_timeout_s=0.5)

        with pytest.raises(DispatchError, match=re.escape(f"cannot reach Ray at {address}")):
            dispatcher.status(_region(ray_address=address), "x-1")


def test_region_without_any_address_raises_dispatch_error() -> None:
    with pytest.raises(DispatchError, match="no ray_address"):
        RayDispatcher().status(_region(), "x-1")


def test_run_info_converts_ray_details() -> None:
    details = JobDetails(
        type=JobType.SUBMISSION,
        submission_id="j-1",
        entrypoint="python x.py",
        status=JobStatus.FAILED,
        message="Job entrypoint command failed with exit code 2",
        error_type="JOB_ENTRYPOINT_COMMAND_ERROR",
        start_time=1_700_000_000_000,
        end_time=1_700_000_061_500,
        driver_exit_code=2,
    )

    info = run_info(details)

    assert info.status is RunStatus.FAILED
    assert info.started_at == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
    assert info.finished_at == datetime(2023, 11, 14, 22, 14, 21, 500_000, tzinfo=UTC)
    assert info.exit_code == 2
    assert info.message.startswith("JOB_ENTRYPOINT_COMMAND_ERROR: ")
    pending = run_info(
        JobDetails(
            type=JobType.SUBMISSION,
            submission_id="j-2",
            entrypoint="x",
            status=JobStatus.PENDING,
            start_time=1_700_000_000_000,
        )
    )
    assert pending.status is RunStatus.PENDING
    assert pending.started_at is None  # accepted, not started


@pytest.mark.ray
def test_token_auth_head_and_clean_stop() -> None:
    """A head in token mode refuses clients without the token; stop() leaves nothing behind."""
    head = start_test_head(auth_mode="token", auth_token=uuid.uuid4().hex)
    try:
        url = head.dashboard_url
        assert head.process_ids(), "the head's processes should carry its marker"
        region = _region(ray_address=url)
        with pytest.raises(DispatchError, match="credentials"):
            RayDispatcher().status(region, "x-1")
        authed = RayDispatcher(auth_token=head.auth_token)
        sid = _sid("token")
        authed.submit(
            region, sid, _py("import time; time.sleep(300)"), env={}, gpus=0, cpus=0.5, memory_mb=0
        )
        _wait(authed, region, sid, lambda i: i.status is RunStatus.RUNNING)
        job_pids = set(head.process_ids())
    finally:
        head.stop()

    assert len(job_pids) > 3  # gcs, raylet, dashboard, ... and the sleeping job
    assert head.process_ids() == []
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/api/version", timeout=2)
    assert not head.running
