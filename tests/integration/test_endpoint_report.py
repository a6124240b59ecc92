"""The worker side of a deployment's endpoint: the file the command writes, the wildcard host
made reachable, the URL rules the API applies, and the one POST the runner's watcher makes
(to a real HTTP server on loopback)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from scheduler.domain import InvalidJobSpec
from scheduler.domain.deployments import check_endpoint
from workers.endpoint import ENDPOINT_FILE_ENV, EndpointWatcher, reachable, write_endpoint
from workers.reporter import ApiTarget, RetryPolicy


def test_a_wildcard_host_becomes_the_nodes_address_toward_the_api() -> None:
    assert reachable("http://0.0.0.0:8123", "http://127.0.0.1:8470") == "http://127.0.0.1:8123"
    assert reachable("http://[::]:8123", "http://127.0.0.1:8470", "10.0.0.7") == (
        "http://10.0.0.7:8123"
    )
    assert reachable("http://10.1.1.1:80/x", "http://127.0.0.1:8470") == "http://10.1.1.1:80/x"
    assert reachable("http://0.0.0.0:1", "http://h:1", "fd00::1") == "http://[fd00::1]:1"


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("http://10.0.0.1:80/", "http://10.0.0.1:80"),
        (" https://svc.example/api ", "https://svc.example/api"),
    ],
)
def test_endpoints_are_stored_without_a_trailing_slash(given: str, stored: str) -> None:
    assert check_endpoint(given) == stored


@pytest.mark.parametrize(
    "bad",
    ["", "ftp://h/x", "http://", "h:80", "http://h:0", "http://h:70000", "http://h/?q", "x" * 600],
)
def test_malformed_endpoints_are_refused(bad: str) -> None:
    with pytest.raises(InvalidJobSpec, match="endpoint"):
        check_endpoint(bad)


def test_write_endpoint_is_atomic_and_a_no_op_without_the_variable(tmp_path: Path) -> None:
    path = tmp_path / "endpoint"
    write_endpoint("http://0.0.0.0:9", {})
    assert not path.exists()
    write_endpoint("http://0.0.0.0:9", {ENDPOINT_FILE_ENV: str(path)})
    assert path.read_text() == "http://0.0.0.0:9\n"
    assert not Path(f"{path}.partial").exists()


class _Api(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[str, str, dict[str, Any]]]] = []
    fail_first: ClassVar[int] = 0

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if _Api.fail_first > 0:
            _Api.fail_first -= 1
            self.send_response(503)
        else:
            _Api.received.append((self.path, self.headers["Authorization"], body))
            self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def api_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Api)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Api.received, _Api.fail_first = [], 1
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_the_watcher_posts_the_endpoint_once_with_the_attempt_token(
    api_url: str, tmp_path: Path
) -> None:
    env: dict[str, str] = {}
    target = ApiTarget(api_url=api_url, job_id="j-1", token="glt_secret")
    watcher = EndpointWatcher.start(target, env, retry=RetryPolicy(initial_s=0.05))
    assert watcher is not None
    assert EndpointWatcher.start(None, {}, retry=RetryPolicy()) is None
    time.sleep(0.6)  # nothing written yet: nothing sent
    assert _Api.received == []
    write_endpoint("http://0.0.0.0:8123", env)
    deadline = time.monotonic() + 10
    while watcher.posted is None:
        assert time.monotonic() < deadline, "the endpoint was never posted"
        time.sleep(0.05)
    # The first try met a 503 and was retried; one POST landed.
    assert _Api.received == [
        ("/v1/jobs/j-1/endpoint", "Bearer glt_secret", {"endpoint": "http://127.0.0.1:8123"})
    ]
