"""``RayServeApps.units`` against a real HTTP server on loopback standing in for Serve's proxy:
an application's ``/-/units`` total read, None for an app that keeps no count (404, another
unit), DispatchError for an answer that is not a count or a proxy that cannot be reached."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from scheduler.dispatch.local_ray import free_port
from scheduler.dispatch.ray_serve import RayServeApps
from scheduler.domain import DispatchError, Region
from tests.fakes.provider_server import ProviderServer, Reply

REGION = Region(name="eu", grid_zone="DE", provider="replay", gpus=1)


@pytest.fixture
def proxy() -> Iterator[ProviderServer]:
    with ProviderServer() as server:
        yield server


def _apps(port: int) -> RayServeApps:
    return RayServeApps(
        address_of=lambda region: f"http://127.0.0.1:{free_port()}",  # the dashboard: unused
        headers_of=lambda address: {},
        http_port=port,
    )


def test_the_application_total_is_read_under_its_route(proxy: ProviderServer) -> None:
    proxy.route(r"/job-1-1/-/units", Reply(200, {"units": 1234, "unit": "requests"}))
    port = urlsplit(proxy.url).port or 0
    assert _apps(port).units(REGION, "job-1-1") == 1234.0
    assert [r.path for r in proxy.requests_to(r"/job-1-1/-/units")] == ["/job-1-1/-/units"]


def test_an_app_without_a_request_count_has_none(proxy: ProviderServer) -> None:
    proxy.route(r"/other-1/-/units", Reply(200, {"units": 5, "unit": "tokens"}))
    port = urlsplit(proxy.url).port or 0
    assert _apps(port).units(REGION, "plain-1") is None  # 404: no such route
    assert _apps(port).units(REGION, "other-1") is None


@pytest.mark.parametrize(
    "reply",
    [
        Reply(200, {"units": "many", "unit": "requests"}),
        Reply(200, {"units": True, "unit": "requests"}),
        Reply(200, "not json"),
        Reply(500, {"error": "boom"}),
    ],
)
def test_an_answer_that_is_not_a_count_is_a_dispatch_error(
    proxy: ProviderServer, reply: Reply
) -> None:
    proxy.route(r"/job-1-1/-/units", reply)
    port = urlsplit(proxy.url).port or 0
    with pytest.raises(DispatchError):
        _apps(port).units(REGION, "job-1-1")


def test_a_proxy_that_cannot_be_reached_is_a_dispatch_error() -> None:
    with pytest.raises(DispatchError, match="request count"):
        _apps(free_port()).units(REGION, "job-1-1")
