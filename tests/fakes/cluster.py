"""A cluster that behaves as the Ray Jobs API does for the Dispatcher port, in memory.

Submissions are idempotent by submission id (a known id is not run again), ``status`` reads
UNKNOWN for an id it never accepted, and ``submit`` takes ``latency_s`` before the cluster
knows the id, as a real HTTP round trip does: that window is where replicas race. It counts
every run it starts, so a test can prove no attempt ran twice. Thread-safe.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Mapping
from typing import Any

from scheduler.domain import Region
from scheduler.domain.runs import RunInfo, RunStatus
from scheduler.domain.serve import ServeApp


class FakeCluster:
    def __init__(self, latency_s: float = 0.0, *, queued: bool = False) -> None:
        """``queued``: runs wait PENDING (in the cluster's queue) until ``finish``."""
        self.latency_s = latency_s
        self.queued = queued
        self.started: Counter[str] = Counter()  # runs started per submission id
        self.submit_calls: Counter[str] = Counter()
        self.status_calls: Counter[str] = Counter()
        self.envs: dict[str, dict[str, str]] = {}
        self._runs: dict[str, RunStatus] = {}
        self._lock = threading.Lock()

    def submit(
        self,
        region: Region,
        submission_id: str,
        entrypoint: str,
        *,
        env: Mapping[str, str],
        gpus: float,
        cpus: float,
        memory_mb: int,
        working_dir: str | None = None,
        runtime_env: Mapping[str, Any] | None = None,
        serve: ServeApp | None = None,
    ) -> None:
        with self._lock:
            self.submit_calls[submission_id] += 1
        time.sleep(self.latency_s)
        with self._lock:
            if submission_id in self._runs:
                return
            self._runs[submission_id] = RunStatus.PENDING if self.queued else RunStatus.RUNNING
            self.started[submission_id] += 1
            self.envs[submission_id] = dict(env)

    def status(self, region: Region, submission_id: str) -> RunInfo:
        with self._lock:
            self.status_calls[submission_id] += 1
            status = self._runs.get(submission_id, RunStatus.UNKNOWN)
        return RunInfo(status=status)

    def logs(self, region: Region, submission_id: str) -> str:
        return ""

    def start(self, submission_id: str) -> None:
        """A queued run gets its slot and starts."""
        with self._lock:
            self._runs[submission_id] = RunStatus.RUNNING

    def finish(self, submission_id: str) -> None:
        """The run ends by itself (its command exited 0)."""
        with self._lock:
            self._runs[submission_id] = RunStatus.SUCCEEDED

    def stop(self, region: Region, submission_id: str) -> bool:
        with self._lock:
            if self._runs.get(submission_id) is not RunStatus.RUNNING:
                return False
            self._runs[submission_id] = RunStatus.STOPPED
            return True
