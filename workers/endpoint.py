"""A deployment's endpoint, reported to the scheduler: where its copy answers.

The runner gives the command ``GREENLIGHT_ENDPOINT_FILE`` (a path; the command writes one line,
``http://HOST:PORT``, once it listens: ``workers.examples.serve_model`` does). A daemon thread
watches the file and posts the endpoint, once, to ``POST $GREENLIGHT_API_URL/v1/jobs/<id>/
endpoint`` with the attempt's token, retrying with backoff while the API is unreachable. A
wildcard host (``0.0.0.0``, ``::``) becomes an address the scheduler can reach: the node's
address on the route to the API (``GREENLIGHT_NODE_IP`` overrides it).
"""

from __future__ import annotations

import atexit
import os
import socket
import threading
import time
from collections.abc import MutableMapping
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

from workers import http_post
from workers.jsonlog import get_logger
from workers.reporter import ApiTarget, RetryPolicy
from workers.scratch import private_folder, remove_folder

logger = get_logger("workers.endpoint")

ENDPOINT_FILE_ENV = "GREENLIGHT_ENDPOINT_FILE"
NODE_IP_ENV = "GREENLIGHT_NODE_IP"
_WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", ""})
_REFUSED_STATUS = frozenset({400, 401, 403, 404, 409, 422})
POLL_S = 0.5


def route_ip(host: str | None) -> str:
    """This machine's address on the route to ``host`` (no packet is sent: a UDP connect only
    picks the interface); the hostname's address when there is no route."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect((host or "127.0.0.1", 9))
            return str(probe.getsockname()[0])
    except OSError:
        return socket.gethostbyname(socket.gethostname())


def reachable(endpoint: str, api_url: str, node_ip: str | None = None) -> str:
    """``endpoint`` with a wildcard host replaced by ``node_ip`` or the route to the API."""
    parts = urlsplit(endpoint.strip())
    if parts.hostname not in _WILDCARD_HOSTS:
        return endpoint.strip()
    ip = node_ip or route_ip(urlsplit(api_url).hostname)
    host = f"[{ip}]" if ":" in ip else ip
    netloc = f"{host}:{parts.port}" if parts.port is not None else host
    return urlunsplit(parts._replace(netloc=netloc))


class EndpointWatcher:
    """Watches the endpoint file and posts its first line, once (see the module docstring)."""

    def __init__(self, target: ApiTarget, path: Path, *, retry: RetryPolicy, node_ip: str | None):
        self._target = target
        self._path = path
        self._retry = retry
        self._node_ip = node_ip
        self.posted: str | None = None

    @classmethod
    def start(
        cls, target: ApiTarget | None, env: MutableMapping[str, str], *, retry: RetryPolicy
    ) -> EndpointWatcher | None:
        """Point ``env[GREENLIGHT_ENDPOINT_FILE]`` (for the command) at a fresh file unless it
        is set, and watch it in a daemon thread; None without a target (nowhere to post)."""
        if target is None:
            return None
        given = env.get(ENDPOINT_FILE_ENV)
        if given:
            path = Path(given)
        else:
            folder = private_folder("greenlight-endpoint-")
            atexit.register(remove_folder, folder)
            path = Path(folder) / "endpoint"
            env[ENDPOINT_FILE_ENV] = str(path)
        watcher = cls(target, path, retry=retry, node_ip=env.get(NODE_IP_ENV) or None)
        threading.Thread(target=watcher.run, name="endpoint", daemon=True).start()
        return watcher

    def run(self) -> None:
        endpoint = None
        while endpoint is None:
            endpoint = self._read()
            if endpoint is None:
                time.sleep(POLL_S)
        delay_s = self._retry.initial_s
        while not self._post(endpoint):
            time.sleep(delay_s)
            delay_s = min(delay_s * self._retry.multiplier, self._retry.max_s)

    def _read(self) -> str | None:
        try:
            text = self._path.read_text().strip()
        except (FileNotFoundError, UnicodeDecodeError):
            return None
        if not text or "\n" in text:  # half written, or not one line: read again
            return None
        return reachable(text, self._target.api_url, self._node_ip)

    def _post(self, endpoint: str) -> bool:
        """True when done: posted, or refused for good (logged)."""
        url = (
            f"{self._target.api_url.rstrip('/')}/v1/jobs/"
            f"{quote(self._target.job_id, safe='')}/endpoint"
        )
        try:
            response = http_post.post(
                url,
                token=self._target.token,
                body={"endpoint": endpoint},
                timeout=(self._retry.connect_timeout_s, self._retry.read_timeout_s),
            )
        except http_post.TransportError as e:
            logger.warning("reporting the endpoint %s: %s; retrying", endpoint, e)
            return False
        if response.ok:
            self.posted = endpoint
            logger.info("endpoint %s reported", endpoint)
            return True
        if response.status in _REFUSED_STATUS:
            logger.error(
                "the API refused the endpoint %s (%d %s)",
                endpoint,
                response.status,
                response.text[:200],
            )
            return True
        logger.warning("reporting the endpoint %s: HTTP %d; retrying", endpoint, response.status)
        return False


def write_endpoint(endpoint: str, env: MutableMapping[str, str] | None = None) -> None:
    """For a served command: write ``endpoint`` where the runner watches, atomically (a
    rename), when ``GREENLIGHT_ENDPOINT_FILE`` is set; nothing otherwise."""
    path = (env if env is not None else os.environ).get(ENDPOINT_FILE_ENV)
    if not path:
        return
    partial = Path(f"{path}.partial")
    partial.write_text(endpoint + "\n")
    partial.replace(path)
