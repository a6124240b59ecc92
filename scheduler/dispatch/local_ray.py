"""A private single-node Ray head on loopback, for the embedded default and the tests.

``LocalRayHead`` runs ``ray start --head --block`` in its own session with its own temp dir and
free ports, waits until the Jobs API and the head's job agent answer, and on exit stops every
process it started: the ``ray start`` leader (which shuts its children down), anything left in
its process group, and any job entrypoint (Ray starts those in sessions of their own) found by a
marker variable that every descendant inherits. It never runs ``ray stop``, which would kill
every Ray on the machine.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Self

import requests

from scheduler.domain import ConfigError, DispatchError

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
# Every process of one head (and every job it runs) carries this variable with a unique value,
# so stop() can find job entrypoints that Ray detached into sessions of their own.
MARKER_ENV = "GREENLIGHT_RAY_HEAD"
AUTH_MODES = ("disabled", "token")
_MIB = 1024 * 1024
_POLL_S = 0.25
# How long stop() keeps killing marked processes until none is left.
KILL_WAIT_S = 10.0
_PROBE_TIMEOUT_S = (1.0, 2.0)
_LOG_TAIL_CHARS = 3000


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port that was free on ``host`` a moment ago (the OS may hand it out again)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class LocalRayHead:
    """Start, probe and stop one Ray head bound to 127.0.0.1. A context manager.

    ``auth_mode`` is Ray's ``RAY_AUTH_MODE`` (``disabled`` or ``token``); None reads
    ``$RAY_AUTH_MODE`` and falls back to ``disabled``. In token mode the head uses
    ``auth_token`` (else ``$RAY_AUTH_TOKEN``, else a fresh random one), exposed as
    ``.auth_token`` for clients. ``resources`` are custom node resources (node-group labels, see
    ``RayDispatcher``). CPUs, GPUs and memory sizes (MiB) left None are sized by Ray from the
    machine: the embedded head offers the GPUs Ray detects (none on a machine without them).
    An unknown ``auth_mode`` raises ConfigError; ``start`` raises DispatchError when the head
    does not come up within ``start_timeout_s`` (seconds). ``node_ip`` is the address
    every service binds (loopback by default, which admits no second node; give this machine's
    own address for a multi-node test cluster). ``gcs_port``, ``dashboard_port`` and
    ``agent_port`` pin the head's ports (None: a free one each), so a second head can take over
    a killed one's addresses. The temp dir lives under
    ``base_temp_dir`` (default: the system's), which must stay short: Ray's socket paths
    under it are limited to ~107 bytes.
    """

    def __init__(
        self,
        *,
        num_cpus: int | None = None,
        num_gpus: int | None = None,
        memory_mb: int | None = None,
        object_store_memory_mb: int | None = 512,
        resources: Mapping[str, float] | None = None,
        auth_mode: str | None = None,
        auth_token: str | None = None,
        start_timeout_s: float = 90.0,
        stop_timeout_s: float = 15.0,
        base_temp_dir: str | Path | None = None,
        node_ip: str = LOOPBACK,
        gcs_port: int | None = None,
        dashboard_port: int | None = None,
        agent_port: int | None = None,
    ) -> None:
        mode = (auth_mode or os.environ.get("RAY_AUTH_MODE") or "disabled").lower()
        if mode not in AUTH_MODES:
            raise ConfigError(f"RAY_AUTH_MODE must be one of {AUTH_MODES}, got {mode!r}")
        self.auth_mode = mode
        self.auth_token: str | None = None
        if mode == "token":
            env_token = os.environ.get("RAY_AUTH_TOKEN")
            self.auth_token = auth_token or env_token or secrets.token_hex(16)
        self._num_cpus = num_cpus
        self._num_gpus = num_gpus
        self._memory_mb = memory_mb
        self._object_store_memory_mb = object_store_memory_mb
        self._resources = dict(resources or {})
        self._start_timeout_s = start_timeout_s
        self._stop_timeout_s = stop_timeout_s
        self._base_temp_dir = str(base_temp_dir) if base_temp_dir is not None else None
        self._marker = secrets.token_hex(8)
        self._node_ip = node_ip
        self._proc: subprocess.Popen[bytes] | None = None
        self._watcher: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None
        self._temp_dir: Path | None = None
        self._ports = (gcs_port, dashboard_port, agent_port)
        self._gcs_port = 0
        self._dashboard_port = 0
        self._agent_port = 0

    # -- public surface -------------------------------------------------------------------

    @property
    def marker(self) -> str:
        """The value of ``GREENLIGHT_RAY_HEAD`` that this node's processes, and the jobs and
        tasks they run, carry in their environment."""
        return self._marker

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def dashboard_url(self) -> str:
        """The Jobs API / dashboard URL, ``http://127.0.0.1:PORT``. Raises DispatchError
        before ``start``."""
        self._require_started()
        return f"http://{self._node_ip}:{self._dashboard_port}"

    @property
    def address(self) -> str:
        """The GCS address (``127.0.0.1:PORT``) that ``ray.init(address=...)`` takes."""
        self._require_started()
        return f"{self._node_ip}:{self._gcs_port}"

    @property
    def temp_dir(self) -> Path:
        """This head's Ray temp dir (session logs live under it)."""
        self._require_started()
        assert self._temp_dir is not None
        return self._temp_dir

    @property
    def auth_headers(self) -> dict[str, str]:
        """HTTP headers a Jobs API client needs for this head (empty without token auth)."""
        return {"Authorization": f"Bearer {self.auth_token}"} if self.auth_token else {}

    def process_ids(self) -> list[int]:
        """Pids of every live process of this head and of the jobs it runs (Linux; [] where
        /proc is missing). Empty once ``stop`` has returned."""
        return _pids_with_env(f"{MARKER_ENV}={self._marker}")

    def start(self) -> Self:
        """Start the head and wait until it accepts jobs. Raises DispatchError."""
        if self._proc is not None:
            raise DispatchError("this LocalRayHead was already started")
        self._temp_dir = Path(tempfile.mkdtemp(prefix="gl-ray-", dir=self._base_temp_dir))
        self._gcs_port, self._dashboard_port, self._agent_port = (
            port or free_port() for port in self._ports
        )
        self._log_file = (self._temp_dir / "ray-start.log").open("wb")
        started_s = time.monotonic()
        self._proc = subprocess.Popen(
            self._command(),
            env=self._environment(),
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._watcher = self._start_watcher(self._proc.pid)
        try:
            self._wait_ready(started_s + self._start_timeout_s)
        except BaseException:
            self.stop()
            raise
        log.info(
            "local Ray head up at %s in %.1f s (temp dir %s, auth %s)",
            self.dashboard_url,
            time.monotonic() - started_s,
            self._temp_dir,
            self.auth_mode,
        )
        return self

    def stop(self) -> None:
        """Stop every process of this head and remove its temp dir. Idempotent; never raises
        for processes that are already gone."""
        if self._watcher is not None:
            _terminate(self._watcher)
            self._watcher = None
        proc, self._proc = self._proc, None
        if proc is not None:
            self._stop_leader(proc)
        self._kill_marked()
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        if self._temp_dir is not None:
            shutil.rmtree(self._temp_dir, ignore_errors=True)
            self._temp_dir = None

    def kill(self) -> None:
        """Crash the head: SIGKILL the ``ray start`` leader's process group (GCS, raylet,
        dashboard, Ray's workers) with no orderly shutdown. Job entrypoints, which Ray starts
        in sessions of their own, are left to fare as they would; ``stop`` still cleans up
        whatever is left and removes the temp dir."""
        if self._watcher is not None:
            _terminate(self._watcher)
            self._watcher = None
        proc = self._proc
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- starting ---------------------------------------------------------------------------

    def _command(self) -> list[str]:
        assert self._temp_dir is not None
        # `python -m ray.scripts.scripts` rather than a `ray` on PATH: a fresh venv need not
        # have its bin/ on PATH.
        cmd = [
            sys.executable,
            "-m",
            "ray.scripts.scripts",
            "start",
            "--head",
            "--block",
            "--node-ip-address",
            self._node_ip,
            "--port",
            str(self._gcs_port),
            "--include-dashboard",
            "true",
            "--dashboard-host",
            self._node_ip,
            "--dashboard-port",
            str(self._dashboard_port),
            # These two have fixed defaults (10001, 52365): pin them so heads can coexist.
            "--ray-client-server-port",
            str(free_port()),
            "--dashboard-agent-listen-port",
            str(self._agent_port),
            "--temp-dir",
            str(self._temp_dir),
            "--disable-usage-stats",
        ]
        if self._num_gpus is not None:
            cmd += ["--num-gpus", str(self._num_gpus)]
        if self._num_cpus is not None:
            cmd += ["--num-cpus", str(self._num_cpus)]
        if self._memory_mb is not None:
            cmd += ["--memory", str(self._memory_mb * _MIB)]
        if self._object_store_memory_mb is not None:
            cmd += ["--object-store-memory", str(self._object_store_memory_mb * _MIB)]
        if self._resources:
            cmd += ["--resources", json.dumps(self._resources)]
        return cmd

    def _environment(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if k
            not in {
                "RAY_ADDRESS",
                "RAY_API_SERVER_ADDRESS",
                "RAY_AUTH_TOKEN",
                "RAY_AUTH_TOKEN_PATH",
            }
        }
        env.update(
            {
                "RAY_AUTH_MODE": self.auth_mode,
                "RAY_USAGE_STATS_ENABLED": "0",
                # Ray swaps a loopback --node-ip-address for the machine's routable IP unless
                # it believes it is on a laptop; this keeps every Ray service on 127.0.0.1. That
                # setting also refuses other nodes: a head on another address accepts them.
                "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0" if self._node_ip == LOOPBACK else "1",
                # SIGTERM would otherwise wait 30 s for a drain that a private head never needs.
                "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0",
                MARKER_ENV: self._marker,
                # Ray SIGKILLs a stopped job 3 s after SIGTERM by default: too short for an
                # interruptible job to checkpoint and for the runner to send its final report.
                "RAY_JOB_STOP_WAIT_TIME_S": env.get("RAY_JOB_STOP_WAIT_TIME_S", "30"),
                # Job entrypoints say `python ...`: make that this interpreter, not the system one.
                "PATH": os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
            }
        )
        if self.auth_token:
            env["RAY_AUTH_TOKEN"] = self.auth_token
        return env

    def _start_watcher(self, leader_pid: int) -> subprocess.Popen[bytes]:
        """A shell that stops the head if this process dies without calling stop()."""
        script = (
            f"while kill -0 {os.getpid()} 2>/dev/null; do sleep 1; done; "
            f"kill -TERM {leader_pid} 2>/dev/null; sleep {self._stop_timeout_s:.0f}; "
            f"kill -KILL -{leader_pid} 2>/dev/null"
        )
        return subprocess.Popen(
            ["/bin/sh", "-c", script],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def _wait_ready(self, deadline_s: float) -> None:
        """Poll until the Jobs API and the head's job agent both answer."""
        urls = [
            f"{self.dashboard_url}/api/version",
            f"http://{self._node_ip}:{self._agent_port}/api/healthz",
        ]
        with requests.Session() as session:
            session.headers.update(self.auth_headers)
            while True:
                if self._proc is None or self._proc.poll() is not None:
                    raise DispatchError(f"ray start exited early:\n{self._log_tail()}")
                if all(_answers(session, url) for url in urls):
                    return
                if time.monotonic() > deadline_s:
                    raise DispatchError(
                        f"local Ray head not ready after {self._start_timeout_s:.0f} s:\n"
                        f"{self._log_tail()}"
                    )
                time.sleep(_POLL_S)

    def _log_tail(self) -> str:
        if self._temp_dir is None:
            return ""
        with contextlib.suppress(OSError):
            text = (self._temp_dir / "ray-start.log").read_text(errors="replace")
            return text[-_LOG_TAIL_CHARS:]
        return ""

    def _require_started(self) -> None:
        if self._proc is None:
            raise DispatchError("the local Ray head is not running")

    # -- stopping ---------------------------------------------------------------------------

    def _stop_leader(self, proc: subprocess.Popen[bytes]) -> None:
        # SIGTERM lets `ray start --block` shut its children down in order; whatever is left
        # in its process group after the grace period is killed outright.
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=self._stop_timeout_s)
        except subprocess.TimeoutExpired:
            log.warning(
                "Ray head %s ignored SIGTERM for %.0f s; killing it", proc.pid, self._stop_timeout_s
            )
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)

    def _kill_marked(self) -> None:
        """Kill every process that carries this head's marker (Linux /proc; elsewhere the
        process-group kill has to do), until none is left: a SIGKILLed process lingers a
        moment, and a raylet may fork a worker between listing and killing."""
        deadline = time.monotonic() + KILL_WAIT_S
        killed: set[int] = set()
        while pids := self.process_ids():
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            killed.update(pids)
            if time.monotonic() > deadline:
                log.warning("processes of the local Ray head still alive: %s", pids)
                break
            time.sleep(0.05)
        if killed:
            log.info("killed %d leftover process(es) of the local Ray head", len(killed))


def _pids_with_env(entry: str) -> list[int]:
    """Pids whose environment holds ``entry`` (``NAME=value``); other users' processes are
    unreadable and so never match."""
    needle = entry.encode()
    proc_root = Path("/proc")
    if not proc_root.is_dir():
        return []
    pids = []
    for child in proc_root.iterdir():
        if not child.name.isdigit() or int(child.name) == os.getpid():
            continue
        try:
            environ = (child / "environ").read_bytes()
        except OSError:
            continue
        if needle in environ.split(b"\0"):
            pids.append(int(child.name))
    return pids


def _answers(session: requests.Session, url: str) -> bool:
    try:
        return session.get(url, timeout=_PROBE_TIMEOUT_S).status_code == 200
    except requests.RequestException:
        return False


def _terminate(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)
