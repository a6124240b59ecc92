"""``RayDispatcher``: the ``Dispatcher`` port over the Ray Jobs API (``JobSubmissionClient``).

One client per cluster address, created on first use and cached (creating one already talks to
the cluster: it checks the server's version). A region's ``ray_address`` is its dashboard / Jobs
URL (``http://host:8265``); a region without one uses the dispatcher's default address.

Resources map onto entrypoint resources: ``gpus`` -> ``entrypoint_num_gpus``, ``cpus`` ->
``entrypoint_num_cpus``, ``memory_mb`` -> ``entrypoint_memory`` (bytes). A region's
``node_label`` becomes a custom entrypoint resource of that name (``{node_label: 0.001}``): start
the nodes of that group with ``ray start --resources '{"<node_label>": 1000}'`` so the entrypoint
lands there. Custom resources work on every Ray >= 2.2, where node labels are still hidden
``ray start`` options.

Submissions are idempotent by submission id: one the cluster already knows is never run again.
Stopping a PENDING run also submits a small "reaper" job (``<id>--reap``): see ``stop``.

Ray objects and errors never leave this module: statuses become ``RunInfo``, faults become
``DispatchError``.
"""

from __future__ import annotations

import logging
import shlex
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

import requests
from ray.exceptions import AuthenticationError
from ray.job_submission import JobDetails, JobStatus, JobSubmissionClient

from scheduler.domain import DispatchError, Region
from scheduler.domain.runs import RunInfo, RunStatus

log = logging.getLogger(__name__)

T = TypeVar("T")

# Ray accounts resources in units of 1e-4; a thousandth lets ~1000 jobs share one node label.
NODE_LABEL_AMOUNT = 0.001
_BYTES_PER_MB = 1024 * 1024
REAPER_SUFFIX = "--reap"
_REAPER_CODE = """\
import ray
from ray.dashboard.modules.job.common import (
    JOB_ACTOR_NAME_TEMPLATE, SUPERVISOR_ACTOR_RAY_NAMESPACE)
ray.init(log_to_driver=False)
try:
    actor = ray.get_actor(JOB_ACTOR_NAME_TEMPLATE.format(job_id={submission_id!r}),
                          namespace=SUPERVISOR_ACTOR_RAY_NAMESPACE)
except ValueError:
    print("already gone: the supervisor of", {submission_id!r})
else:
    ray.kill(actor, no_restart=True)
    print("killed the supervisor of", {submission_id!r})
"""

_STATUS: Mapping[JobStatus, RunStatus] = {
    JobStatus.PENDING: RunStatus.PENDING,
    JobStatus.RUNNING: RunStatus.RUNNING,
    JobStatus.SUCCEEDED: RunStatus.SUCCEEDED,
    JobStatus.FAILED: RunStatus.FAILED,
    JobStatus.STOPPED: RunStatus.STOPPED,
}


class _TimedJobSubmissionClient(JobSubmissionClient):
    """A JobSubmissionClient whose every HTTP request has a (connect, read) timeout.

    Ray's client sends requests without one, so a blackholed address would hang the caller
    (the service's reconcile loop) forever.
    """

    def __init__(self, address: str, *, headers: dict[str, str],
                 timeout_s: tuple[float, float]) -> None:
        self._timeout_s = timeout_s  # before super(): its constructor already sends a request
        super().__init__(address, headers=headers or None)

    def _do_request(self, method: str, endpoint: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self._timeout_s)
        response: requests.Response = super()._do_request(method, endpoint, **kwargs)
        return response


class RayDispatcher:
    """Submit, query, read logs of and stop Ray jobs, one cached client per cluster.

    ``default_address`` serves regions whose ``ray_address`` is None. ``auth_token`` is sent as
    ``Authorization: Bearer`` to every cluster (token-auth clusters, ``RAY_AUTH_MODE=token``);
    without it Ray's own lookup applies (``RAY_AUTH_MODE``/``RAY_AUTH_TOKEN`` in this
    process's environment). Timeouts are seconds. Safe to share between threads.
    """

    def __init__(
        self, default_address: str | None = None, *, auth_token: str | None = None,
        connect_timeout_s: float = 5.0, read_timeout_s: float = 30.0,
    ) -> None:
        self._default_address = default_address
        self._headers = {"Authorization": f"Bearer {auth_token}"} if auth_token else {}
        self._timeout_s = (connect_timeout_s, read_timeout_s)
        self._clients: dict[str, JobSubmissionClient] = {}
        self._lock = threading.Lock()

    # -- the Dispatcher port ----------------------------------------------------------------

    def submit(
        self, region: Region, submission_id: str, entrypoint: str, *, env: Mapping[str, str],
        gpus: int, cpus: float, memory_mb: int, working_dir: str | None = None,
    ) -> None:
        """Start ``entrypoint`` as Ray job ``submission_id`` with ``env`` in its environment.

        Idempotent: when the cluster already knows ``submission_id`` (a retry after a crash,
        a lost response, a racing replica), nothing new runs and this returns normally.
        Raises DispatchError when the cluster cannot be reached or refuses the job.
        """
        runtime_env: dict[str, Any] = {"env_vars": {str(k): str(v) for k, v in env.items()}}
        if working_dir:
            runtime_env["working_dir"] = working_dir
        self._submit_once(
            region, submission_id, entrypoint=entrypoint, runtime_env=runtime_env,
            entrypoint_num_cpus=cpus, entrypoint_num_gpus=gpus or None,
            entrypoint_memory=memory_mb * _BYTES_PER_MB if memory_mb > 0 else None,
            entrypoint_resources=(
                {region.node_label: NODE_LABEL_AMOUNT} if region.node_label else None))

    def status(self, region: Region, submission_id: str) -> RunInfo:
        """What the cluster says about ``submission_id``; RunStatus.UNKNOWN when it has no such
        submission. Times are wall-clock UTC from the cluster: ``started_at`` is when Ray
        accepted the job (None while PENDING), ``finished_at`` when it reached a terminal
        state. A run stopped while PENDING reads STOPPED (Ray itself calls it FAILED: see
        ``stop``). Raises DispatchError."""
        details = self._details(region, submission_id)
        if details is None:
            return RunInfo(status=RunStatus.UNKNOWN,
                           message=f"no submission {submission_id!r} on {self._address(region)}")
        info = run_info(details)
        if info.status is RunStatus.FAILED and self._details(
                region, reaper_id(submission_id)) is not None:
            return RunInfo(status=RunStatus.STOPPED, message=f"stopped while pending: "
                           f"{info.message}", started_at=None, finished_at=info.finished_at)
        return info

    def logs(self, region: Region, submission_id: str) -> str:
        """The run's combined stdout/stderr so far; "" when the cluster has no such submission
        (never submitted, or lost with a restarted cluster). Raises DispatchError."""
        try:
            text: str = self._call(region, lambda c: c.get_job_logs(submission_id))
        except _NotFound:
            return ""
        return text

    def stop(self, region: Region, submission_id: str) -> bool:
        """Ask the run to stop: SIGTERM to its entrypoint, SIGKILL after Ray's grace period.
        True if the run had not finished; False when it had, or the cluster has no such
        submission. Raises DispatchError.

        A PENDING run is stopped too. Ray only queues a stop behind the job's supervisor actor,
        which for resources no node has is never placed, so the job would sit PENDING until
        Ray's start timeout (``RAY_JOB_START_TIMEOUT_SECONDS``, 900 s). So this also submits a
        reaper job (``<id>--reap``, no resources) that kills that unplaced actor with
        ``ray.kill``: the run never starts, and ``status`` then reads STOPPED.
        """
        details = self._details(region, submission_id)
        if details is None or details.status.is_terminal():
            return False
        try:
            stopped: bool = self._call(region, lambda c: c.stop_job(submission_id))
        except _NotFound:
            return False
        if details.status == JobStatus.PENDING:
            self._submit_once(region, reaper_id(submission_id),
                              entrypoint=reaper_entrypoint(submission_id), runtime_env={})
            stopped = True
        log.info("asked %s on %s to stop (was %s)", submission_id, self._address(region),
                 details.status.value)
        return stopped

    # -- extras beyond the port -------------------------------------------------------------

    def stop_if_pending_too_long(
        self, region: Region, submission_id: str, *, max_pending_s: float, now: datetime,
    ) -> bool:
        """Stop the run if it has waited PENDING (e.g. for GPUs no node has) for more than
        ``max_pending_s`` since Ray accepted it. ``now`` is wall-clock aware UTC (Ray's
        timestamps are wall clock). True if it was stopped here. Raises DispatchError."""
        details = self._details(region, submission_id)
        if details is None or details.status != JobStatus.PENDING:
            return False
        accepted_at = _from_ms(details.start_time)
        if accepted_at is None or (now - accepted_at).total_seconds() <= max_pending_s:
            return False
        log.warning("%s pending on %s since %s; stopping it", submission_id,
                    self._address(region), accepted_at.isoformat())
        return self.stop(region, submission_id)

    # -- plumbing ---------------------------------------------------------------------------

    def _submit_once(
        self, region: Region, submission_id: str, *, entrypoint: str,
        runtime_env: dict[str, Any], **resources: Any,
    ) -> None:
        """Submit unless the cluster already knows ``submission_id``. Raises DispatchError."""
        address = self._address(region)
        if self._details(region, submission_id) is not None:
            log.info("submission %s already on %s; not submitting again", submission_id, address)
            return
        try:
            self._call(region, lambda c: c.submit_job(
                entrypoint=entrypoint, submission_id=submission_id, runtime_env=runtime_env,
                **resources))
        except (DispatchError, _NotFound) as e:
            # The submit may have landed before the failure (a lost response) or a racing
            # replica may have won: either way the job exists once, which is what we want.
            if self._details(region, submission_id) is not None:
                log.info("submission %s exists on %s after a failed submit; treating it as "
                         "submitted", submission_id, address)
                return
            if isinstance(e, DispatchError):
                raise
            raise DispatchError(f"Ray at {address} refused {submission_id}: {e}") from e
        log.info("submitted %s to %s with %s", submission_id, address,
                 {k: v for k, v in resources.items() if v is not None})

    def _address(self, region: Region) -> str:
        address = region.ray_address or self._default_address
        if not address:
            raise DispatchError(
                f"region {region.name!r} has no ray_address and no default Ray address is set")
        return address.rstrip("/")

    def _client(self, address: str) -> JobSubmissionClient:
        with self._lock:
            client = self._clients.get(address)
        if client is not None:
            return client
        # Built outside the lock: the constructor does network I/O. Two threads racing here
        # both build one; the first stored wins and the other is dropped, harmlessly.
        client = _TimedJobSubmissionClient(address, headers=dict(self._headers),
                                           timeout_s=self._timeout_s)
        with self._lock:
            return self._clients.setdefault(address, client)

    def _call(self, region: Region, request: Callable[[JobSubmissionClient], T]) -> T:
        """Run ``request`` against the region's cluster, translating Ray's and requests'
        errors: 404 -> _NotFound, anything else -> DispatchError naming the address."""
        address = self._address(region)
        try:
            return request(self._client(address))
        except AuthenticationError as e:
            raise DispatchError(f"Ray at {address} refused our credentials (token auth): "
                                f"{_first_line(e)}") from e
        except (requests.RequestException, ConnectionError) as e:
            raise DispatchError(f"cannot reach Ray at {address}: {_first_line(e)}") from e
        except ValueError as e:  # an address Ray cannot parse, or a reply it cannot
            raise DispatchError(f"cannot use Ray at {address!r}: {_first_line(e)}") from e
        except RuntimeError as e:
            # Ray's client reports HTTP errors as RuntimeError("Request failed with status
            # code N: ..."); the status code is the only structured part.
            if "status code 404" in str(e):
                raise _NotFound(str(e)) from e
            raise DispatchError(f"Ray at {address} failed: {_last_line(e)}") from e

    def _details(self, region: Region, submission_id: str) -> JobDetails | None:
        try:
            details: JobDetails = self._call(region, lambda c: c.get_job_info(submission_id))
        except _NotFound:
            return None
        return details


class _NotFound(Exception):
    """The cluster answered 404: it has no such submission. Never leaves this module."""


def reaper_id(submission_id: str) -> str:
    """The submission id of the job that reaps ``submission_id`` when it is stopped pending."""
    return f"{submission_id}{REAPER_SUFFIX}"


def reaper_entrypoint(submission_id: str) -> str:
    """A shell command, run inside the cluster, that kills the job supervisor actor of
    ``submission_id`` (Ray names it from templates in its job module) so it is never placed."""
    return f"python -c {shlex.quote(_REAPER_CODE.format(submission_id=submission_id))}"


def run_info(details: JobDetails) -> RunInfo:
    """Ray's JobDetails as a RunInfo (pure; ms epoch timestamps become aware UTC)."""
    status = _STATUS.get(details.status, RunStatus.UNKNOWN)
    message = details.message or ""
    if details.error_type and status is RunStatus.FAILED:
        message = f"{details.error_type}: {message}" if message else str(details.error_type)
    return RunInfo(
        status=status, message=message,
        started_at=None if status is RunStatus.PENDING else _from_ms(details.start_time),
        finished_at=_from_ms(details.end_time), exit_code=details.driver_exit_code)


def _from_ms(epoch_ms: int | None) -> datetime | None:
    return None if epoch_ms is None else datetime.fromtimestamp(epoch_ms / 1000.0, tz=UTC)


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _last_line(err: BaseException) -> str:
    """Ray embeds server tracebacks in its errors; the last non-empty line names the cause."""
    lines = [line for line in str(err).splitlines() if line.strip(" .")]
    return lines[-1].strip() if lines else type(err).__name__
