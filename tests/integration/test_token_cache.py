"""Verified tokens are remembered briefly (issue 8: one store round trip less per request), and
revocation is honoured: at once when revoked through this process, within the cache's TTL when
revoked elsewhere (``greenlight token revoke``, another replica)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from scheduler.api.app import create_app
from scheduler.api.token_cache import TokenCache
from scheduler.bootstrap import build_service
from scheduler.config import load_settings
from scheduler.domain import Role
from scheduler.service import GreenlightService
from tests.fakes.cluster import FakeCluster


class Ticks:
    def __init__(self) -> None:
        self.now_s = 0.0

    def __call__(self) -> float:
        return self.now_s


@pytest.fixture
def served(sqlite_url: str) -> Iterator[tuple[GreenlightService, TestClient, Ticks]]:
    service = build_service(load_settings(database_url=sqlite_url), dispatcher=FakeCluster())
    app = create_app(service)
    ticks = Ticks()
    app.state.token_cache = TokenCache(ttl_s=2.0, clock=ticks)
    with TestClient(app) as http:
        yield service, http, ticks


def _status(http: TestClient, secret: str) -> int:
    return http.get("/v1/jobs", headers={"Authorization": f"Bearer {secret}"}).status_code


def test_a_cached_token_is_looked_up_once_per_ttl(
    served: tuple[GreenlightService, TestClient, Ticks],
) -> None:
    service, http, ticks = served
    secret, _ = service.create_token(tenant="acme", role=Role.USER)
    lookups = 0
    store = service.ctx.store
    real = store.token_by_hash

    def counted(token_hash: str):  # type: ignore[no-untyped-def]
        nonlocal lookups
        lookups += 1
        return real(token_hash)

    store.token_by_hash = counted  # type: ignore[method-assign]
    assert [_status(http, secret) for _ in range(5)] == [200] * 5
    assert lookups == 1
    ticks.now_s = 2.5
    assert _status(http, secret) == 200
    assert lookups == 2
    assert _status(http, "glt_not-a-token") == 401  # a refusal is never cached
    assert _status(http, "glt_not-a-token") == 401
    assert lookups == 4


def test_revoked_here_is_refused_at_once(
    served: tuple[GreenlightService, TestClient, Ticks],
) -> None:
    service, http, _ = served
    secret, token = service.create_token(tenant="acme", role=Role.USER)
    admin, _ = service.create_token(tenant="ops", role=Role.ADMIN)
    assert _status(http, secret) == 200
    revoked = http.post(
        f"/v1/tokens/{token.id}/revoke", headers={"Authorization": f"Bearer {admin}"}
    )
    assert revoked.status_code == 200, revoked.text
    assert _status(http, secret) == 401


def test_revoked_elsewhere_is_refused_within_the_ttl(
    served: tuple[GreenlightService, TestClient, Ticks],
) -> None:
    service, http, ticks = served
    secret, token = service.create_token(tenant="acme", role=Role.USER)
    assert _status(http, secret) == 200
    service.ctx.store.revoke_token(token.id)  # as `greenlight token revoke` does, in the store
    assert _status(http, secret) == 200  # still cached
    ticks.now_s = 2.1
    assert _status(http, secret) == 401
