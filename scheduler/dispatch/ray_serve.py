"""``RayServeApps``: deployments run as Ray Serve applications, through Serve's REST API.

Serve's REST API lives on the region's dashboard (the Jobs address) and is declarative:
``PUT /api/serve/applications/`` sets the whole list of applications on the cluster (it starts
Serve when it is not running and removes every application the list leaves out), ``GET
/api/serve/applications/`` reports every application with its status and the config it was
deployed from (``deployed_app_config``), ``DELETE /api/serve/applications/`` shuts Serve down.

So deploying one application is read, add, write: the applications the cluster runs from
declarative configs are kept as they were deployed, and ours is added with ``name`` and
``route_prefix`` set to the run's submission id (each attempt, and each copy of a move, is its own
application at its own path: ``http://<cluster host>:<Serve port>/<submission id>``). Removing is
the same with ours left out; the last one out shuts Serve down. A lock per cluster serialises
Greenlight's own writes; a write by someone else between our read and write is overwritten (Serve
gives no version to compare), which is why only declaratively deployed applications are kept.
Serve's cluster options (``http_options``) are fixed when Serve starts: a running Serve keeps its
own, a starting one gets ``http_host``/``http_port``.

Statuses: ``NOT_STARTED``/``DEPLOYING`` -> PENDING, ``RUNNING``/``UNHEALTHY`` -> RUNNING (Serve
restarts unhealthy replicas itself), ``DEPLOY_FAILED`` -> FAILED, ``DELETING`` -> STOPPED, absent
-> UNKNOWN. Vendor JSON never leaves this module: it returns ``RunInfo`` and raises
``DispatchError``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import requests

from scheduler.domain import DispatchError, Region
from scheduler.domain.errors import ClusterUnreachable
from scheduler.domain.runs import RunInfo, RunStatus
from scheduler.domain.serve import ServeApp

log = logging.getLogger(__name__)

APPLICATIONS = "/api/serve/applications/"
# The runner's one-time credential: no runner runs beside a Serve application to spend it, and
# Serve shows every application's config to anyone who can read the dashboard.
WITHHELD_ENV = frozenset({"GREENLIGHT_TOKEN"})
DEFAULT_HTTP_PORT = 8000
# A replica's share of its region's node-group resource (as ``ray_jobs.NODE_LABEL_AMOUNT``, which
# imports this module).
NODE_LABEL_AMOUNT = 0.001
# Where an application that counts its requests answers its total, under its route prefix
# (``workers.examples.serve_app``), and how long (connect, read) the scheduler waits for it.
UNITS_ROUTE = "/-/units"
UNITS_TIMEOUT_S = (2.0, 5.0)
_STATUS: Mapping[str, RunStatus] = {
    "NOT_STARTED": RunStatus.PENDING,
    "DEPLOYING": RunStatus.PENDING,
    "RUNNING": RunStatus.RUNNING,
    "UNHEALTHY": RunStatus.RUNNING,
    "DEPLOY_FAILED": RunStatus.FAILED,
    "DELETING": RunStatus.STOPPED,
}


class RayServeApps:
    """Deploy, query and remove Serve applications on each region's cluster.

    ``address_of`` gives a region's dashboard URL, ``headers_of`` the auth headers for an
    address (both the job dispatcher's, so a region has one address and one token); ``timeout_s``
    is ``(connect, read)``. Safe to share between threads.
    """

    def __init__(
        self,
        *,
        address_of: Callable[[Region], str],
        headers_of: Callable[[str], dict[str, str]],
        timeout_s: tuple[float, float] = (5.0, 30.0),
        http_host: str = "0.0.0.0",
        http_port: int = DEFAULT_HTTP_PORT,
        session: requests.Session | None = None,
    ) -> None:
        self._address_of = address_of
        self._headers_of = headers_of
        self._timeout_s = timeout_s
        self._http_options = {"host": http_host, "port": http_port}
        self._http = session or requests.Session()
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    def deploy(
        self,
        region: Region,
        name: str,
        app: ServeApp,
        *,
        env: Mapping[str, str],
        runtime_env: Mapping[str, Any] | None = None,
    ) -> None:
        """Deploy ``app`` as application ``name`` (also its route prefix), with ``env`` (less
        ``WITHHELD_ENV``) merged into its runtime_env's env_vars. Idempotent: an application of
        that name already on the cluster is left as it is. Raises DispatchError."""
        address = self._address_of(region)
        with self._lock(address):
            details = self._get(address)
            apps = _applications(details)
            if name in apps:
                return
            kept = [
                config
                for config in (_deployed_config(a) for a in apps.values())
                if config is not None
            ]
            config = _app_config(
                name, app, env=env, runtime_env=runtime_env, node_label=region.node_label
            )
            self._put(address, _cluster_options(details, self._http_options), [*kept, config])
        log.info("deployed Serve application %s (%s) on %s", name, app.import_path, address)

    def status(self, region: Region, name: str) -> RunInfo:
        """What Serve says about application ``name``; UNKNOWN when it has none. Raises
        DispatchError."""
        address = self._address_of(region)
        app = _applications(self._read_or_empty(address)).get(name)
        if app is None:
            return RunInfo(status=RunStatus.UNKNOWN, message=f"no Serve application {name!r}")
        raw = str(app.get("status") or "")
        status = _STATUS.get(raw, RunStatus.PENDING)
        deployed_s = app.get("last_deployed_time_s")
        return RunInfo(
            status=status,
            message=f"Serve {raw}: {app.get('message') or ''}".strip().rstrip(":"),
            started_at=datetime.fromtimestamp(float(deployed_s), UTC)
            if status is RunStatus.RUNNING and isinstance(deployed_s, int | float)
            else None,
        )

    def stop(self, region: Region, name: str) -> bool:
        """Remove application ``name`` (Serve drains its replicas); the last application out
        shuts Serve down. True if it was there. Raises DispatchError."""
        address = self._address_of(region)
        with self._lock(address):
            details = self._read_or_empty(address)
            apps = _applications(details)
            if name not in apps:
                return False
            kept = [
                config
                for other, a in apps.items()
                if other != name and (config := _deployed_config(a)) is not None
            ]
            if kept:
                self._put(address, _cluster_options(details, self._http_options), kept)
            else:
                self._call(address, "DELETE", APPLICATIONS)
        log.info("removed Serve application %s from %s", name, address)
        return True

    def endpoint(self, region: Region, name: str) -> str:
        """Where application ``name`` answers once running (the proxy on the dashboard's host;
        for a cluster whose proxies listen elsewhere, front them and follow the job's events)."""
        host = urlsplit(self._address_of(region)).hostname or "127.0.0.1"
        return f"http://{host}:{self._http_options['port']}/{name}"

    def units(self, region: Region, name: str) -> float | None:
        """The requests application ``name`` says it answered (``GET <endpoint>/-/units``,
        ``{"units": N, "unit": "requests"}``), or None when it keeps no such count (404, or
        another unit). Raises DispatchError when it cannot be asked or answers nonsense."""
        url = f"{self.endpoint(region, name)}{UNITS_ROUTE}"
        try:
            response = self._http.get(url, timeout=UNITS_TIMEOUT_S)
            body = response.json() if response.ok else None
        except (requests.RequestException, ValueError) as e:
            raise DispatchError(f"cannot read the request count of {name} at {url}: {e}") from e
        if response.status_code == 404 or (
            isinstance(body, dict) and body.get("unit") != "requests"
        ):
            return None
        units = body.get("units") if isinstance(body, dict) else None
        if not response.ok or isinstance(units, bool) or not isinstance(units, int | float):
            raise DispatchError(
                f"{name} answered {response.status_code} without a count at {url}: "
                f"{response.text.strip()[-200:]}"
            )
        return float(units)

    # -- HTTP ---------------------------------------------------------------------------------

    def _lock(self, address: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(address, threading.Lock())

    def _get(self, address: str) -> dict[str, Any]:
        body = self._call(address, "GET", APPLICATIONS).json()
        if not isinstance(body, dict):
            raise DispatchError(f"Ray Serve at {address} sent {type(body).__name__}, not details")
        return body

    def _read_or_empty(self, address: str) -> dict[str, Any]:
        """The details, or none when the cluster answers but not for Serve (no Serve there, so
        no application of ours either: a job id it does not know stays UNKNOWN)."""
        try:
            return self._get(address)
        except ClusterUnreachable:
            raise
        except DispatchError as e:
            log.debug("no Serve details from %s: %s", address, e)
            return {}

    def _put(
        self, address: str, options: Mapping[str, Any], applications: list[dict[str, Any]]
    ) -> None:
        self._call(address, "PUT", APPLICATIONS, json={**options, "applications": applications})

    def _call(self, address: str, method: str, path: str, json: Any = None) -> requests.Response:
        try:
            response = self._http.request(
                method,
                f"{address}{path}",
                json=json,
                timeout=self._timeout_s,
                headers=self._headers_of(address),
            )
        except (requests.ConnectionError, requests.Timeout) as e:
            raise ClusterUnreachable(f"cannot reach Ray Serve at {address}: {e}") from e
        except requests.RequestException as e:
            raise DispatchError(f"cannot reach Ray Serve at {address}: {e}") from e
        if not response.ok:
            raise DispatchError(
                f"Ray Serve at {address} refused {method} {path}: HTTP {response.status_code} "
                f"{response.text.strip()[-300:]}"
            )
        return response


def _applications(details: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    apps = details.get("applications") or {}
    return (
        {str(k): v for k, v in apps.items() if isinstance(v, dict)}
        if isinstance(apps, dict)
        else {}
    )


def _deployed_config(app: Mapping[str, Any]) -> dict[str, Any] | None:
    """The config an application was deployed from; None for one deployed from code (``serve.run``),
    which a declarative write cannot keep."""
    config = app.get("deployed_app_config")
    return dict(config) if isinstance(config, dict) else None


def _cluster_options(details: Mapping[str, Any], default_http: Mapping[str, Any]) -> dict[str, Any]:
    """Serve's cluster options for a write: those of the running Serve, else the defaults."""
    running = bool(_applications(details)) or bool(details.get("controller_info"))
    http = details.get("http_options") if running else None
    if not isinstance(http, dict) or not http.get("port"):
        http = dict(default_http)
    options: dict[str, Any] = {"http_options": {"host": http["host"], "port": http["port"]}}
    if running and details.get("proxy_location"):
        options["proxy_location"] = details["proxy_location"]
    return options


def _in_node_group(deployment: Mapping[str, Any], node_label: str) -> dict[str, Any]:
    """``deployment`` with ``{node_label: NODE_LABEL_AMOUNT}`` added to its replicas'
    resources. Serve has no application-wide default for ``ray_actor_options``: a deployment
    the config leaves out keeps the options in its code and may run on any node."""
    options = dict(deployment.get("ray_actor_options") or {})
    options["resources"] = {**dict(options.get("resources") or {}), node_label: NODE_LABEL_AMOUNT}
    return {**deployment, "ray_actor_options": options}


def _app_config(
    name: str,
    app: ServeApp,
    *,
    env: Mapping[str, str],
    runtime_env: Mapping[str, Any] | None,
    node_label: str | None = None,
) -> dict[str, Any]:
    """One entry of Serve's ``applications`` list for ``app``; in a region that is a node
    group (``node_label``), each deployment the config lists asks for a sliver of the group's
    custom resource, so its replicas run on that group's nodes."""
    config = dict(app.config)
    if node_label:
        config["deployments"] = [
            _in_node_group(d, node_label) if isinstance(d, dict) else d
            for d in config.get("deployments") or []
        ]
    job_renv, app_renv = dict(runtime_env or {}), dict(config.get("runtime_env") or {})
    renv = {**job_renv, **app_renv}
    renv["env_vars"] = {  # the job's, then the application's, then Greenlight's
        str(k): str(v)
        for layer in (job_renv.get("env_vars"), app_renv.get("env_vars"), env)
        for k, v in dict(layer or {}).items()
        if k not in WITHHELD_ENV
    }
    return {
        **config,
        "name": name,
        "route_prefix": f"/{name}",
        "import_path": app.import_path,
        "runtime_env": renv,
    }
