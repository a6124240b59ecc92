"""Engines and transactions: the only place that knows how each backend locks.

SQLite is opened in WAL mode (readers never block the writer), with a busy timeout (a writer
waits for another instead of failing at once) and foreign keys on. Python's ``sqlite3`` driver
is told to stop issuing its own ``BEGIN`` (its legacy mode skips it before SELECT and DDL), and
SQLAlchemy issues it instead, following the SQLAlchemy "Transactions with SQLite and the sqlite3
driver" recipe: ``BEGIN IMMEDIATE`` for write transactions, so a read-then-write such as
``claim_due`` takes the write lock before it reads and two processes cannot both claim one row;
plain ``BEGIN`` for reads, so a count and its page see one snapshot.

PostgreSQL needs none of this: write transactions rely on row locks
(``FOR UPDATE SKIP LOCKED``) and conditional updates in the stores.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import StaticPool

from scheduler.domain import ConfigError

SQLITE_BUSY_TIMEOUT_MS = 10_000
PING_AFTER_IDLE_S = 1.0
_WRITE_OPTION = "greenlight_write"
SUPPORTED_BACKENDS = ("sqlite", "postgresql")


def create_store_engine(url: str, *, echo: bool = False) -> Engine:
    """An engine for ``url`` (``sqlite:///path.db``, ``sqlite://`` in memory, or
    ``postgresql[+psycopg]://...``), configured for the stores' locking.

    A bare ``postgresql://`` or ``postgres://`` URL is given the psycopg 3 driver, the one
    Greenlight installs. An in-memory SQLite database is one connection shared by every thread:
    for tests and one-off tools only. Raises ConfigError for a malformed URL or a backend
    other than SQLite and PostgreSQL.
    """
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError as e:
        raise ConfigError(f"malformed database URL {url!r}: {e}") from e
    if parsed.drivername in {"postgresql", "postgres"}:
        parsed = parsed.set(drivername="postgresql+psycopg")
    backend = parsed.get_backend_name()
    if backend not in SUPPORTED_BACKENDS:
        raise ConfigError(
            f"database backend {backend!r} is not supported; use one of {SUPPORTED_BACKENDS}"
        )
    if backend == "sqlite":
        return _sqlite_engine(parsed, echo=echo)
    return _utc_sessions(
        _ping_when_idle(sa.create_engine(parsed, echo=echo, json_deserializer=_json_loads))
    )


def _utc_sessions(engine: Engine) -> Engine:
    """Set each PostgreSQL session's time zone to UTC: psycopg then reads ``timestamptz``
    values as UTC already (``datetime.UTC``), and ``UtcDateTime`` returns them as they are
    instead of converting each from the server's zone (a million values at a restart)."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        autocommit = dbapi_connection.autocommit
        dbapi_connection.autocommit = True
        try:
            dbapi_connection.execute("SET TIME ZONE 'UTC'")
        finally:
            dbapi_connection.autocommit = autocommit

    return engine


def _json_loads(data: bytes | bytearray | memoryview | str) -> Any:
    """psycopg hands JSON columns over as bytes, which ``json.loads`` first sniffs for their
    encoding: a third of reading 100,000 jobs (four JSON columns each) went to that sniffing.
    PostgreSQL sends UTF-8 (the client encoding SQLAlchemy sets)."""
    if data == b"null":  # an absent document (``after``, ``serve`` of most jobs)
        return None
    if data == b"[]":  # no allowed-regions list (most jobs): a third of the column's cost
        return []
    return json.loads(data if isinstance(data, str) else bytes(data).decode("utf-8"))


def _ping_when_idle(engine: Engine) -> Engine:
    """Test a pooled connection before use only if it sat idle ``PING_AFTER_IDLE_S``: one that
    was returned milliseconds ago is alive, and ``pool_pre_ping``'s round trip on every
    checkout was a sixth of a submit's time (issue 8). A connection that fails its ping is
    replaced (the pool retries the checkout), so a database restart during a quiet spell
    costs no request; one within the last moments costs at most the requests in flight."""

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info["checked_in_s"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        checked_in_s = record.info.get("checked_in_s")  # None: connected just now
        if checked_in_s is None or time.monotonic() - checked_in_s < PING_AFTER_IDLE_S:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as e:
            raise sa.exc.DisconnectionError(f"stale pooled connection: {e}") from e

    return engine


def _sqlite_engine(url: sa.URL, *, echo: bool) -> Engine:
    in_memory = url.database in {None, "", ":memory:"}
    kwargs: dict[str, Any] = {}
    if in_memory:
        kwargs = {"poolclass": StaticPool, "connect_args": {"check_same_thread": False}}
    engine = sa.create_engine(url, echo=echo, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # The driver must not BEGIN on its own: SQLAlchemy does it below, with the right mode.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            if not in_memory:
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA foreign_keys=ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        write = connection.get_execution_options().get(_WRITE_OPTION, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


def for_writing(connection: Connection) -> Connection:
    """Mark ``connection`` so its next transaction takes SQLite's write lock at BEGIN (a no-op
    on PostgreSQL). Call before the transaction begins; returns the same connection."""
    return connection.execution_options(**{_WRITE_OPTION: True})


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction that will write: holds SQLite's write lock from its first statement.

    Commits on exit, rolls back on any exception.
    """
    with engine.connect() as connection, for_writing(connection).begin():
        yield connection


@contextmanager
def read_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction that only reads: one consistent snapshot, no write lock."""
    with engine.connect() as connection, connection.begin():
        yield connection


class SqlAdapter:
    """Base of the SQL stores: each part of :class:`~scheduler.store.sql.SqlStore` shares one
    engine, and the engine's pool is the only state it keeps between calls."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @property
    def engine(self) -> Engine:
        return self._engine
