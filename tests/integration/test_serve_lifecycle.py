"""``greenlight serve`` on the embedded default starts its own Ray head and takes it down when
it stops: after SIGTERM no process of that head is left and its temp dir is gone."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from scheduler.dispatch.local_ray import MARKER_ENV, free_port

pytestmark = pytest.mark.ray
START_TIMEOUT_S = 120.0


def _pids_with(needle: bytes, part: str) -> dict[int, bytes]:
    """Pid -> /proc/<pid>/<part> for every readable process whose ``part`` contains needle."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            data = (entry / part).read_bytes()
        except OSError:
            continue
        if needle in data:
            found[int(entry.name)] = data
    return found


def _marker_of(environ: bytes) -> str | None:
    for item in environ.split(b"\0"):
        if item.startswith(f"{MARKER_ENV}=".encode()):
            return item.split(b"=", 1)[1].decode()
    return None


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc")
def test_serve_stops_its_ray_head_and_removes_its_temp_dir(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GREENLIGHT_")}
    env.update(
        GREENLIGHT_DATABASE_URL=f"sqlite:///{tmp_path / 'greenlight.db'}",
        GREENLIGHT_LOG_FORMAT="text",
        GREENLIGHT_LOG_LEVEL="INFO",
    )
    stderr_path = tmp_path / "serve.log"
    with stderr_path.open("w") as stderr:
        serve = subprocess.Popen(
            [sys.executable, "-m", "scheduler.cli.main", "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            assert serve.poll() is None, stderr_path.read_text()[-3000:]
            try:
                if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2).ok:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, stderr_path.read_text()[-3000:]
            time.sleep(0.5)
        found = re.search(r"temp dir (\S+), auth", stderr_path.read_text())
        assert found, stderr_path.read_text()[-3000:]
        temp_dir = Path(found.group(1))
        assert temp_dir.is_dir()
        head_pids = _pids_with(str(temp_dir).encode(), "cmdline")
        markers = set()
        for pid in head_pids:
            with open(f"/proc/{pid}/environ", "rb") as f:
                if (marker := _marker_of(f.read())) is not None:
                    markers.add(marker)
        assert len(markers) == 1, markers
        marker = markers.pop()
        assert len(_pids_with(f"{MARKER_ENV}={marker}".encode(), "environ")) >= 3

        serve.send_signal(signal.SIGTERM)
        assert serve.wait(timeout=60) is not None
    finally:
        if serve.poll() is None:
            os.killpg(serve.pid, signal.SIGKILL)

    assert _pids_with(f"{MARKER_ENV}={marker}".encode(), "environ") == {}
    assert not temp_dir.exists()
