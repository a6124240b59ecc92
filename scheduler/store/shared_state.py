"""What a scheduler process shares with the API processes, in the ``scheduler_state`` table.

One row per name: a version counter, the time it was last written and an optional body.

* ``wake:<cycle>`` rows are counters: an API process bumps one after an arrival (debounced by
  ``scheduler.service.wakeups``) and the scheduler process, which watches the versions, runs
  that cycle early. On PostgreSQL a bump also sends ``NOTIFY greenlight_wake`` so the watcher
  need not poll; on SQLite it polls the counters (one indexed read).
* ``ledger`` holds the admission ledger the last plan cycle left (``scheduler.store.ledger``).
* ``cycles`` holds the scheduler's health and counters, for ``/healthz`` and ``/metrics``.

Every call is one short transaction on the store's engine; nothing here is kept in memory.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from scheduler.store.engine import read_transaction, write_transaction
from scheduler.store.tables import scheduler_state

log = logging.getLogger(__name__)

WAKE_CHANNEL = "greenlight_wake"
WAKE_PREFIX = "wake:"


@dataclass(frozen=True, slots=True)
class SharedRow:
    name: str
    version: int
    updated_at: datetime
    body: bytes | None


class SharedState:
    """The ``scheduler_state`` rows over ``engine``. Safe to share between threads."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.is_postgres = engine.dialect.name == "postgresql"

    def _upsert(self, name: str, body: bytes | None, *, keep_body: bool) -> Any:
        now = datetime.now(UTC)
        table = scheduler_state
        dialect = postgresql if self.is_postgres else sqlite
        stmt = dialect.insert(table).values(name=name, version=1, updated_at=now, body=body)
        changes: dict[str, Any] = {"version": table.c.version + 1, "updated_at": now}
        if not keep_body:
            changes["body"] = body
        return stmt.on_conflict_do_update(index_elements=[table.c.name], set_=changes)

    def bump(self, names: Collection[str]) -> None:
        """Add one to each ``wake:<name>`` counter (and NOTIFY on PostgreSQL)."""
        if not names:
            return
        with write_transaction(self.engine) as conn:
            for name in sorted(names):  # one lock order: two API processes never deadlock
                conn.execute(self._upsert(WAKE_PREFIX + name, None, keep_body=True))
            if self.is_postgres:
                conn.execute(
                    sa.text("SELECT pg_notify(:channel, :payload)"),
                    {"channel": WAKE_CHANNEL, "payload": ",".join(sorted(names))},
                )

    def put(self, name: str, body: bytes) -> None:
        """Replace ``name``'s body (its version goes up by one)."""
        with write_transaction(self.engine) as conn:
            conn.execute(self._upsert(name, body, keep_body=False))

    def get(self, name: str) -> SharedRow | None:
        with read_transaction(self.engine) as conn:
            row = conn.execute(
                sa.select(scheduler_state).where(scheduler_state.c.name == name)
            ).first()
        if row is None:
            return None
        return SharedRow(row.name, int(row.version), row.updated_at, row.body)

    def versions(self, names: Iterable[str]) -> dict[str, int]:
        """The version of each of ``names`` that exists (a missing row is absent)."""
        c = scheduler_state.c
        with read_transaction(self.engine) as conn:
            rows = conn.execute(sa.select(c.name, c.version).where(c.name.in_(list(names))))
            return {name: int(version) for name, version in rows}

    def wake_versions(self, cycles: Iterable[str]) -> dict[str, int]:
        found = self.versions(WAKE_PREFIX + c for c in cycles)
        return {name.removeprefix(WAKE_PREFIX): v for name, v in found.items()}


class WakeListener:
    """``LISTEN greenlight_wake`` on a connection of its own (PostgreSQL only).

    ``wait(timeout_s)`` returns the cycle names notified within the timeout (empty on a
    timeout). A lost connection is reopened on the next call; while it is down, ``wait``
    sleeps the timeout and returns nothing, and the caller's polling covers the gap.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._conn: Any = None

    def _connect(self) -> Any:
        import psycopg

        url = self._engine.url
        conn = psycopg.connect(
            url.set(drivername="postgresql").render_as_string(hide_password=False),
            autocommit=True,
        )
        conn.execute(f"LISTEN {WAKE_CHANNEL}")
        return conn

    def wait(self, timeout_s: float) -> set[str]:
        import time

        try:
            if self._conn is None:
                self._conn = self._connect()
            conn = self._conn
            names: set[str] = set()
            for batch in (conn.notifies(timeout=timeout_s, stop_after=1), conn.notifies(timeout=0)):
                for notify in batch:  # the first one (waited for), then whatever else is queued
                    names.update(n for n in notify.payload.split(",") if n)
            return names
        except Exception as e:  # the database went away: poll until it is back
            log.debug("wake listener: %s", e)
            self.close()
            time.sleep(timeout_s)
            return set()

    def close(self) -> None:
        if self._conn is not None:
            # Closing a broken connection may fail; it is gone either way.
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None
