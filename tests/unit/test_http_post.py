"""The worker's standard-library POST against a real HTTP server on loopback."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest

from workers import http_post
from workers.reporter import ApiTarget, RetryPolicy
from workers.runner import exchange_bootstrap

TIMEOUT = (2.0, 5.0)


class _Recorder(BaseHTTPRequestHandler):
    seen: ClassVar[list[dict[str, Any]]] = []
    answer: ClassVar[tuple[int, bytes]] = (201, b'{"token":"glj_x"}')
    delay_s: ClassVar[float] = 0.0

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(length)
        _Recorder.seen.append(
            {"path": self.path, "headers": dict(self.headers.items()), "body": raw}
        )
        time.sleep(_Recorder.delay_s)
        status, body = _Recorder.answer
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    _Recorder.seen = []
    _Recorder.answer = (201, b'{"token":"glj_x"}')
    _Recorder.delay_s = 0.0
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_posts_json_with_the_bearer_token_and_reads_the_answer(server: str) -> None:
    answer = http_post.post(
        f"{server}/api/v1/jobs/j%2F1/energy?x=1",
        token="glj_secret",
        body={"reports": [{"energy_j": 1.5}]},
        timeout=TIMEOUT,
    )
    assert (answer.status, answer.ok, answer.json()) == (201, True, {"token": "glj_x"})
    (seen,) = _Recorder.seen
    assert seen["path"] == "/api/v1/jobs/j%2F1/energy?x=1"
    assert seen["headers"]["Authorization"] == "Bearer glj_secret"
    assert seen["headers"]["Content-Type"] == "application/json"
    assert json.loads(seen["body"]) == {"reports": [{"energy_j": 1.5}]}


def test_no_body_posts_an_empty_one(server: str) -> None:
    http_post.post(f"{server}/v1/tokens/exchange", token="glb_once", timeout=TIMEOUT)
    (seen,) = _Recorder.seen
    assert (seen["body"], seen["headers"]["Content-Length"]) == (b"", "0")


def test_an_error_status_is_an_answer_not_an_exception(server: str) -> None:
    _Recorder.answer = (409, b"not json")
    answer = http_post.post(f"{server}/x", token="t", timeout=TIMEOUT)
    assert (answer.status, answer.ok, answer.text) == (409, False, "not json")
    with pytest.raises(ValueError, match="Expecting value"):
        answer.json()


def test_a_closed_port_is_a_transport_error() -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(http_post.TransportError, match="ConnectionRefused"):
        http_post.post(f"http://127.0.0.1:{port}/x", token="t", timeout=TIMEOUT)


def test_a_slow_answer_times_out_at_the_read_timeout(server: str) -> None:
    _Recorder.delay_s = 1.0
    started = time.monotonic()
    with pytest.raises(http_post.TransportError, match="timed out"):
        http_post.post(f"{server}/x", token="t", timeout=(2.0, 0.2))
    assert time.monotonic() - started < 0.9


def test_a_url_that_is_not_http_is_refused() -> None:
    with pytest.raises(ValueError, match="not an http"):
        http_post.post("ftp://example.org/x", token="t", timeout=TIMEOUT)


def _exchange(server: str, sleeps: list[float]) -> ApiTarget | None:
    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        time.sleep(seconds)

    return exchange_bootstrap(
        ApiTarget(api_url=f"{server}/", job_id="j-1", token="glb_once"),
        timeout_s=1.0,
        retry=RetryPolicy(initial_s=0.3, multiplier=1.0),
        sleep=sleep,
    )


def test_the_bootstrap_exchange_takes_the_token_the_api_answers(server: str) -> None:
    sleeps: list[float] = []
    target = _exchange(server, sleeps)
    assert target == ApiTarget(api_url=f"{server}/", job_id="j-1", token="glj_x")
    (seen,) = _Recorder.seen
    assert (seen["path"], seen["headers"]["Authorization"]) == (
        "/v1/tokens/exchange",
        "Bearer glb_once",
    )
    assert sleeps == []


@pytest.mark.parametrize("body", [b"<html>proxy</html>", b'["glj_x"]', b'{"token": 7}'])
def test_a_created_answer_without_a_token_is_retried_then_given_up(
    server: str, body: bytes
) -> None:
    _Recorder.answer = (201, body)
    sleeps: list[float] = []
    assert _exchange(server, sleeps) is None
    assert (
        len(_Recorder.seen) == len(sleeps) + 1 >= 2
    )  # retried, 0.3 s apart, until the 1 s deadline


def test_a_refused_credential_turns_reporting_off_at_once(server: str) -> None:
    _Recorder.answer = (401, b'{"detail":"used"}')
    sleeps: list[float] = []
    assert _exchange(server, sleeps) is None
    assert (len(_Recorder.seen), sleeps) == (1, [])


@contextlib.contextmanager
def _canned(reply: bytes, *, close: bool) -> Iterator[str]:
    """A TCP server that reads one request and sends ``reply``, closing the connection after
    it or (``close`` False) holding it open, as a keep-alive proxy might."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def serve() -> None:
        conn, _ = listener.accept()
        conn.recv(65536)
        conn.sendall(reply)
        if close:
            conn.close()
        else:
            held.append(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/x"
    finally:
        thread.join(timeout=5)
        for conn in held:
            conn.close()
        listener.close()


def test_a_chunked_answer_is_put_back_together() -> None:
    reply = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b'7\r\n{"accep\r\nb;x=1\r\nted": 3}   \r\n0\r\n\r\n'
    )
    with _canned(reply, close=True) as url:
        answer = http_post.post(url, token="t", timeout=TIMEOUT)
    assert answer.json() == {"accepted": 3}


def test_an_answer_is_complete_at_its_length_on_a_connection_left_open() -> None:
    reply = b'HTTP/1.1 200 OK\r\nContent-Length: 15\r\n\r\n{"accepted": 2}'
    started = time.monotonic()
    with _canned(reply, close=False) as url:
        answer = http_post.post(url, token="t", timeout=(2.0, 3.0))
    assert answer.json() == {"accepted": 2}
    assert time.monotonic() - started < 2.0  # did not wait for the read timeout


@pytest.mark.parametrize(
    ("reply", "why"),
    [
        (b"SSH-2.0-OpenSSH_9.2\r\n", "not an HTTP answer"),
        (b"HTTP/1.1 abc OK\r\n\r\n", "not an HTTP status"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n{}", "ended after 2 of 99 bytes"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n9\r\nab", "inside a chunk"),
    ],
)
def test_what_is_not_a_whole_http_answer_is_a_transport_error(reply: bytes, why: str) -> None:
    with _canned(reply, close=True) as url, pytest.raises(http_post.TransportError, match=why):
        http_post.post(url, token="t", timeout=TIMEOUT)
