"""PostgreSQL pooled connections are tested before use only after sitting idle
(``scheduler.store.engine``): a connection the server dropped while it sat in the pool is
replaced without the caller seeing an error, and a busy pool pays no ping per checkout."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from scheduler.store import engine as engine_module
from scheduler.store.engine import create_store_engine

pytestmark = pytest.mark.postgres


def _pooled_pid(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one())


def _kill(url: str, pid: int) -> None:
    """Drop backend ``pid`` from another connection, as a server restart would."""
    admin = sa.create_engine(url, poolclass=sa.NullPool)
    with admin.connect() as conn:
        assert conn.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": pid}).scalar()
    admin.dispose()


def test_an_idle_connection_the_server_dropped_is_replaced_unseen(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = create_store_engine(pg_url)
    try:
        dropped = _pooled_pid(engine)
        _kill(pg_url, dropped)
        monkeypatch.setattr(engine_module, "PING_AFTER_IDLE_S", 0.0)  # it has sat "long enough"
        assert _pooled_pid(engine) != dropped  # the ping failed, the pool connected anew
    finally:
        engine.dispose()


def test_a_connection_returned_a_moment_ago_is_used_without_a_ping(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = create_store_engine(pg_url)
    pings: list[object] = []
    real_ping = engine.dialect.do_ping
    monkeypatch.setattr(engine.dialect, "do_ping", lambda c: pings.append(c) or real_ping(c))
    monkeypatch.setattr(engine_module, "PING_AFTER_IDLE_S", 3600.0)
    try:
        first = _pooled_pid(engine)  # connected just now: nothing to test
        for _ in range(5):
            assert _pooled_pid(engine) == first
        assert pings == []  # reused straight from the pool
        # Dropped while fresh in the pool, it is not pinged: the statement fails and the pool
        # is invalidated, so the next checkout connects anew (what a ping per checkout saved).
        _kill(pg_url, first)
        with pytest.raises(sa.exc.OperationalError):
            _pooled_pid(engine)
        assert _pooled_pid(engine) != first
    finally:
        engine.dispose()
