"""``RayDispatcher``: the ``Dispatcher`` port over Ray's public job and state APIs.

Status, logs, stop and the version probe use the documented Jobs REST API (``GET
/api/jobs/{id}``, ``GET /api/jobs/{id}/logs``, ``POST /api/jobs/{id}/stop``, ``GET
/api/version``) through one ``requests.Session`` per dispatcher, with ``(connect, read)``
timeouts on every request and "no such submission" read from the 404 status code. Submission
goes through ``ray.job_submission.JobSubmissionClient.submit_job``, because that is what uploads
a local ``working_dir`` / ``py_modules`` to the cluster (as ``ray job submit`` does); Ray's
client has no timeout, so a version probe with one runs first. Capacity comes from the state
API (``ray.util.state.StateApiClient``, ``ray list nodes``), never from ``ray.init``.

A region's ``ray_address`` is its dashboard / Jobs URL (``http://host:8265``); a region without
one uses the dispatcher's default address. Each address may have its own bearer token.

Resources map onto entrypoint resources: ``gpus`` -> ``entrypoint_num_gpus``, ``cpus`` ->
``entrypoint_num_cpus``, ``memory_mb`` -> ``entrypoint_memory`` (bytes). A region's
``node_label`` becomes a custom entrypoint resource of that name (``{node_label: 0.001}``): start
the nodes of that group with ``ray start --resources '{"<node_label>": 1000}'`` so the entrypoint
lands there. The job also gets ``GREENLIGHT_RAY_RESOURCES`` (JSON, ``{"<node_label>": 0.001}``)
in its environment: the job's own tasks and actors stay in the group when it passes that as
``resources=`` (Ray has no job-wide default for custom resources).

The ``env`` a job is submitted with (Greenlight's worker variables: the job id, the attempt,
a one-time credential) reaches it as ``export`` statements leading the entrypoint, not in the
runtime env's ``env_vars``: a runtime env that differs for every job makes Ray's runtime-env
agent set up a new environment for each (30 trivial jobs: 3 % longer, 1.7 CPU s more, measured
side by side). The job's own ``runtime_env`` goes to Ray unchanged, with
``GREENLIGHT_RAY_RESOURCES``. Ray shows the entrypoint (in job info and the log's first line)
as it shows a runtime env; what it records is only ever the one-time credential
(``scheduler.service.tokens``).

Submissions are idempotent by submission id: one the cluster already knows is never run again.
Stopping a PENDING run also submits a small "reaper" job (``<id>--reap``): see ``stop``.

Ray objects and errors never leave this module: statuses become ``RunInfo``, node lists
``ClusterCapacity``, faults ``DispatchError`` (``ClusterUnreachable`` when no answer came at
all: refused, reset or timed out).
"""

from __future__ import annotations

import json
import logging
import re
import shlex
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import requests
from ray.job_submission import JobDetails, JobStatus, JobSubmissionClient
from ray.util.state import StateApiClient
from ray.util.state.exception import RayStateApiException

from scheduler.dispatch.ray_serve import DEFAULT_HTTP_PORT, RayServeApps
from scheduler.domain import DispatchError, Region
from scheduler.domain.capacity import ClusterCapacity
from scheduler.domain.errors import ClusterUnreachable
from scheduler.domain.runs import RunInfo, RunStatus
from scheduler.domain.serve import ServeApp

log = logging.getLogger(__name__)

# Ray accounts resources in units of 1e-4; a thousandth lets ~1000 jobs share one node label.
NODE_LABEL_AMOUNT = 0.001
RESOURCES_ENV = "GREENLIGHT_RAY_RESOURCES"
_SHELL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")  # what `export` takes
_BYTES_PER_MB = 1024 * 1024
REAPER_SUFFIX = "--reap"
# Ray has no public call to cancel a job whose supervisor actor was never placed; the reaper
# kills that actor by the name and namespace Ray 2.60 gives it (checked by the pinned tests).
_SUPERVISOR_NAME = "_ray_internal_job_actor_{submission_id}"
_SUPERVISOR_NAMESPACE = "SUPERVISOR_ACTOR_RAY_NAMESPACE"
_REAPER_CODE = """\
import ray
ray.init(log_to_driver=False)
try:
    actor = ray.get_actor({name!r}, namespace={namespace!r})
except ValueError:
    print("already gone: the supervisor of", {submission_id!r})
else:
    ray.kill(actor, no_restart=True)
    print("killed the supervisor of", {submission_id!r})
"""
# Resources every node reports that are not capacity a job asks for by name.
_BUILTIN_RESOURCES = ("CPU", "GPU", "memory", "object_store_memory")

_STATUS: Mapping[JobStatus, RunStatus] = {
    JobStatus.PENDING: RunStatus.PENDING,
    JobStatus.RUNNING: RunStatus.RUNNING,
    JobStatus.SUCCEEDED: RunStatus.SUCCEEDED,
    JobStatus.FAILED: RunStatus.FAILED,
    JobStatus.STOPPED: RunStatus.STOPPED,
}


class RayDispatcher:
    """Submit, query, read logs of and stop Ray jobs; read each cluster's capacity.

    ``default_address`` serves regions whose ``ray_address`` is None. ``auth_tokens`` maps a
    cluster address to its bearer token (token-auth clusters, ``RAY_AUTH_MODE=token``);
    ``auth_token`` serves every other address. Timeouts are seconds. Safe to share between
    threads.
    """

    def __init__(
        self,
        default_address: str | None = None,
        *,
        auth_token: str | None = None,
        auth_tokens: Mapping[str, str] | None = None,
        connect_timeout_s: float = 5.0,
        read_timeout_s: float = 30.0,
        serve_http_host: str = "0.0.0.0",
        serve_http_port: int = DEFAULT_HTTP_PORT,
    ) -> None:
        self._default_address = default_address
        self._token = auth_token
        self._tokens = {a.rstrip("/"): t for a, t in (auth_tokens or {}).items()}
        self._timeout_s = (connect_timeout_s, read_timeout_s)
        self._http = requests.Session()
        # Deployments with a ``serve`` spec: Ray Serve applications on the same clusters.
        self.serve = RayServeApps(
            address_of=self._address,
            headers_of=self._headers,
            timeout_s=self._timeout_s,
            http_host=serve_http_host,
            http_port=serve_http_port,
            session=self._http,
        )
        self._sdk: dict[str, JobSubmissionClient] = {}
        self._lock = threading.Lock()

    # -- the Dispatcher port ----------------------------------------------------------------

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
        """Start ``entrypoint`` as Ray job ``submission_id`` with ``env`` in its environment
        (with ``serve``: deploy that Ray Serve application, named ``submission_id``, instead;
        ``scheduler.dispatch.ray_serve``; status, stop and logs then follow the application).

        ``runtime_env`` is passed to Ray as the job's runtime environment (``pip``, ``conda``,
        ``py_modules``, ``excludes``, ...; a local ``working_dir`` is uploaded, at most Ray's
        gRPC message size, 512 MiB by default); ``env`` is exported by the entrypoint (see the
        module), over the runtime env's ``env_vars`` of the same names.
        Idempotent: when the cluster already knows ``submission_id`` (a retry after a crash,
        a lost response, a racing replica), nothing new runs and this returns normally.
        Raises DispatchError when the cluster cannot be reached or refuses the job.
        """
        if serve is not None:
            self.serve.deploy(region, submission_id, serve, env=env, runtime_env=runtime_env)
            return
        renv: dict[str, Any] = dict(runtime_env or {})
        env_vars = {str(k): str(v) for k, v in dict(renv.get("env_vars") or {}).items()}
        exported = {str(k): str(v) for k, v in env.items() if _SHELL_NAME.fullmatch(str(k))}
        # A name the shell cannot export (rare) still reaches the job, at a runtime env's cost.
        env_vars.update({str(k): str(v) for k, v in env.items() if str(k) not in exported})
        label = {region.node_label: NODE_LABEL_AMOUNT} if region.node_label else None
        if label:
            env_vars[RESOURCES_ENV] = json.dumps(label)
        if env_vars:
            renv["env_vars"] = env_vars
        entrypoint = with_exports(entrypoint, exported)
        if working_dir:
            renv["working_dir"] = working_dir
        self._submit_once(
            region,
            submission_id,
            entrypoint=entrypoint,
            runtime_env=renv,
            entrypoint_num_cpus=cpus,
            entrypoint_num_gpus=gpus or None,  # a share (0.25) too: Ray packs it by 1/10,000
            entrypoint_memory=memory_mb * _BYTES_PER_MB if memory_mb > 0 else None,
            entrypoint_resources=label,
        )

    def status(self, region: Region, submission_id: str) -> RunInfo:
        """What the cluster says about ``submission_id``; RunStatus.UNKNOWN when it has no such
        submission. Times are wall-clock UTC from the cluster: ``started_at`` is when Ray
        accepted the job (None while PENDING), ``finished_at`` when it reached a terminal
        state. A run stopped while PENDING reads STOPPED (Ray itself calls it FAILED: see
        ``stop``). Raises DispatchError."""
        details = self._details(region, submission_id)
        if details is None:
            served = self.serve.status(region, submission_id)  # a Serve application, maybe
            if served.status is not RunStatus.UNKNOWN:
                return served
            return RunInfo(
                status=RunStatus.UNKNOWN,
                message=f"no submission {submission_id!r} on {self._address(region)}",
            )
        info = run_info(details)
        if (
            info.status is RunStatus.FAILED
            and self._details(region, reaper_id(submission_id)) is not None
        ):
            return RunInfo(
                status=RunStatus.STOPPED,
                message=f"stopped while pending: {info.message}",
                started_at=None,
                finished_at=info.finished_at,
            )
        return info

    def logs(self, region: Region, submission_id: str) -> str:
        """The run's combined stdout/stderr so far; "" when the cluster has no such submission
        (never submitted, or lost with a restarted cluster). Raises DispatchError."""
        body = self._rest(region, "GET", f"/api/jobs/{submission_id}/logs")
        return "" if body is None else str(body.get("logs") or "")

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
        if details is None:
            return self.serve.stop(region, submission_id)  # a Serve application, maybe
        if details.status.is_terminal():
            return False
        body = self._rest(region, "POST", f"/api/jobs/{submission_id}/stop")
        if body is None:
            return False
        stopped = bool(body.get("stopped"))
        if details.status == JobStatus.PENDING:
            self._submit_once(
                region,
                reaper_id(submission_id),
                entrypoint=reaper_entrypoint(submission_id),
                runtime_env={},
            )
            stopped = True
        log.info(
            "asked %s on %s to stop (was %s)",
            submission_id,
            self._address(region),
            details.status.value,
        )
        return stopped

    # -- extras beyond the port -------------------------------------------------------------

    def serve_endpoint(self, region: Region, submission_id: str) -> str:
        """Where the Serve application ``submission_id`` answers (``ray_serve.RayServeApps``)."""
        return self.serve.endpoint(region, submission_id)

    def serve_units(self, region: Region, submission_id: str) -> float | None:
        """The Serve application's running total of requests answered
        (``ray_serve.RayServeApps.units``)."""
        return self.serve.units(region, submission_id)

    def capacity(self, region: Region) -> ClusterCapacity:
        """What the region's live nodes offer in total (its node group's, for a region with a
        ``node_label``): CPUs, GPUs and custom resources, from Ray's state API. Raises
        DispatchError when the cluster cannot be reached."""
        address = self._address(region)
        try:
            client = StateApiClient(address=address, headers=self._headers(address))
            nodes = client.list(
                _nodes_resource(),
                options=_list_options(self._timeout_s[1]),
                raise_on_missing_output=False,
            )
        except (
            RayStateApiException,
            requests.RequestException,
            ConnectionError,
            RuntimeError,
            ValueError,
        ) as e:
            raise DispatchError(
                f"cannot read the nodes of Ray at {address}: {_first_line(e)}"
            ) from e
        totals: dict[str, float] = {}
        for node in nodes:
            resources = dict(getattr(node, "resources_total", None) or {})
            if getattr(node, "state", "ALIVE") != "ALIVE":
                continue
            if region.node_label and region.node_label not in resources:
                continue
            for name, amount in resources.items():
                totals[name] = totals.get(name, 0.0) + float(amount)
        return ClusterCapacity(
            cpus=totals.get("CPU", 0.0),
            gpus=totals.get("GPU", 0.0),
            resources={
                k: v
                for k, v in totals.items()
                if k not in _BUILTIN_RESOURCES and not k.startswith("node:")
            },
        )

    def stop_if_pending_too_long(
        self,
        region: Region,
        submission_id: str,
        *,
        max_pending_s: float,
        now: datetime,
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
        log.warning(
            "%s pending on %s since %s; stopping it",
            submission_id,
            self._address(region),
            accepted_at.isoformat(),
        )
        return self.stop(region, submission_id)

    # -- plumbing ---------------------------------------------------------------------------

    def _submit_once(
        self,
        region: Region,
        submission_id: str,
        *,
        entrypoint: str,
        runtime_env: dict[str, Any],
        **resources: Any,
    ) -> None:
        """Submit unless the cluster already knows ``submission_id``. Raises DispatchError.

        Ray refuses a submission id it knows, so the submit is tried first and the cluster
        asked only when it fails: one request a submit instead of two."""
        address = self._address(region)
        try:
            self._sdk_client(address).submit_job(
                entrypoint=entrypoint,
                submission_id=submission_id,
                runtime_env=runtime_env,
                **resources,
            )
        except (
            requests.RequestException,
            ConnectionError,
            RuntimeError,
            ValueError,
            TypeError,
        ) as e:
            # The id was known already (a retry after a crash, a racing replica), or the submit
            # landed before the failure (a lost response): either way the job exists once,
            # which is what we want.
            if self._details(region, submission_id) is not None:
                log.info(
                    "submission %s already on %s; not submitting again", submission_id, address
                )
                return
            raise DispatchError(f"Ray at {address} refused {submission_id}: {_last_line(e)}") from e
        log.info(
            "submitted %s to %s with %s",
            submission_id,
            address,
            {k: v for k, v in resources.items() if v is not None},
        )

    def _address(self, region: Region) -> str:
        address = region.ray_address or self._default_address
        if not address:
            raise DispatchError(
                f"region {region.name!r} has no ray_address and no default Ray address is set"
            )
        return address.rstrip("/")

    def _headers(self, address: str) -> dict[str, str]:
        token = self._tokens.get(address, self._token)
        return {"Authorization": f"Bearer {token}"} if token else {}

    def _sdk_client(self, address: str) -> JobSubmissionClient:
        """Ray's client for ``address``, after a version probe with our timeouts (its own
        requests have none, and its constructor already talks to the cluster)."""
        self._request(address, "GET", "/api/version")
        with self._lock:
            client = self._sdk.get(address)
        if client is None:
            client = JobSubmissionClient(address, headers=self._headers(address) or None)
            with self._lock:
                client = self._sdk.setdefault(address, client)
        return client

    def _request(self, address: str, method: str, path: str) -> requests.Response:
        """One REST call with timeouts; errors other than 404 become DispatchError."""
        try:
            response = self._http.request(
                method, f"{address}{path}", timeout=self._timeout_s, headers=self._headers(address)
            )
        except (requests.ConnectionError, requests.Timeout) as e:
            raise ClusterUnreachable(f"cannot reach Ray at {address}: {_first_line(e)}") from e
        except requests.RequestException as e:
            raise DispatchError(f"cannot reach Ray at {address}: {_first_line(e)}") from e
        if response.status_code in (401, 403):
            raise DispatchError(
                f"Ray at {address} refused our credentials (token auth): "
                f"HTTP {response.status_code}"
            )
        if response.status_code != 404 and not response.ok:
            raise DispatchError(
                f"Ray at {address} failed: HTTP {response.status_code} "
                f"{response.text.strip()[-300:]}"
            )
        return response

    def _rest(self, region: Region, method: str, path: str) -> dict[str, Any] | None:
        """A Jobs REST call's JSON body; None on 404 (no such submission)."""
        address = self._address(region)
        response = self._request(address, method, path)
        if response.status_code == 404:
            return None
        try:
            body = response.json()
        except ValueError as e:
            raise DispatchError(
                f"Ray at {address} sent no JSON for {path}: {response.text[:200]!r}"
            ) from e
        if not isinstance(body, dict):
            raise DispatchError(f"Ray at {address} sent {type(body).__name__} for {path}")
        return body

    def _details(self, region: Region, submission_id: str) -> JobDetails | None:
        body = self._rest(region, "GET", f"/api/jobs/{submission_id}")
        if body is None:
            return None
        try:
            return JobDetails(**body)
        except (TypeError, ValueError) as e:
            raise DispatchError(
                f"unexpected job details from Ray at {self._address(region)}: {_first_line(e)}"
            ) from e


def _nodes_resource() -> Any:
    from ray.util.state.common import StateResource

    return StateResource.NODES


def _list_options(timeout_s: float) -> Any:
    from ray.util.state.common import ListApiOptions

    return ListApiOptions(timeout=max(1, int(timeout_s)), detail=False)


def reaper_id(submission_id: str) -> str:
    """The submission id of the job that reaps ``submission_id`` when it is stopped pending."""
    return f"{submission_id}{REAPER_SUFFIX}"


def reaper_entrypoint(submission_id: str) -> str:
    """A shell command, run inside the cluster, that kills the job supervisor actor of
    ``submission_id`` (Ray names it from templates in its job module) so it is never placed."""
    code = _REAPER_CODE.format(
        name=_SUPERVISOR_NAME.format(submission_id=submission_id),
        namespace=_SUPERVISOR_NAMESPACE,
        submission_id=submission_id,
    )
    return f"python -c {shlex.quote(code)}"


def run_info(details: JobDetails) -> RunInfo:
    """Ray's JobDetails as a RunInfo (pure; ms epoch timestamps become aware UTC)."""
    status = _STATUS.get(details.status, RunStatus.UNKNOWN)
    message = details.message or ""
    if details.error_type and status is RunStatus.FAILED:
        message = f"{details.error_type}: {message}" if message else str(details.error_type)
    return RunInfo(
        status=status,
        message=message,
        started_at=None if status is RunStatus.PENDING else _from_ms(details.start_time),
        finished_at=_from_ms(details.end_time),
        exit_code=details.driver_exit_code,
    )


def _from_ms(epoch_ms: int | None) -> datetime | None:
    return None if epoch_ms is None else datetime.fromtimestamp(epoch_ms / 1000.0, tz=UTC)


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _last_line(err: BaseException) -> str:
    """Ray embeds server tracebacks in its errors; the last non-empty line names the cause."""
    lines = [line for line in str(err).splitlines() if line.strip(" .")]
    return lines[-1].strip() if lines else type(err).__name__


def with_exports(entrypoint: str, env: Mapping[str, str]) -> str:
    """``entrypoint`` (a shell command line, as Ray runs it) preceded by an ``export`` of
    ``env`` (names the shell accepts), in the same shell."""
    if not env:
        return entrypoint
    assignments = " ".join(f"{name}={shlex.quote(value)}" for name, value in env.items())
    return f"export {assignments}; {entrypoint}"
