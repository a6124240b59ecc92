"""Store fixtures shared by every test folder: database URLs for a fresh SQLite file and a fresh
PostgreSQL schema. Both point at an *empty* database: build the schema with
``scheduler.store.migrate.upgrade(url)`` (what the service does) or ``metadata.create_all``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.pool import NullPool

POSTGRES_URL = os.environ.get(
    "GREENLIGHT_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
_START_HINT = (
    "start it with: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLite file in the test's temporary folder (created on first connect)."""
    return f"sqlite:///{tmp_path / 'greenlight.db'}"


@pytest.fixture(scope="session")
def _postgres_admin() -> Iterator[Engine]:
    """A connection to the shared test database, or a skip when PostgreSQL is unreachable."""
    engine = sa.create_engine(POSTGRES_URL, poolclass=NullPool, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError as e:
        engine.dispose()
        reason = str(e.orig).strip().splitlines()[0] if e.orig else str(e)
        pytest.skip(f"PostgreSQL unreachable at {POSTGRES_URL} ({reason}); {_START_HINT}")
    yield engine
    engine.dispose()


@contextmanager
def _fresh_schema(admin: Engine) -> Iterator[str]:
    schema = f"gl_test_{uuid.uuid4().hex[:12]}"
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = sa.make_url(POSTGRES_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            # A connection a test leaked inside a transaction would block the drop forever.
            conn.execute(sa.text("SET LOCAL lock_timeout = '10s'"))
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))


@pytest.fixture
def pg_url(_postgres_admin: Engine) -> Iterator[str]:
    """The test database with a fresh, empty schema of its own first on ``search_path``, so
    tests sharing database ``test`` never see each other's tables. Dropped afterwards."""
    with _fresh_schema(_postgres_admin) as url:
        yield url


@pytest.fixture(scope="module")
def pg_module_url(_postgres_admin: Engine) -> Iterator[str]:
    """Like ``pg_url``, but one schema for a whole test module (empty it between tests
    yourself): for suites where creating tables per test would dominate the run time."""
    with _fresh_schema(_postgres_admin) as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str:
    """Each test using it runs twice: on a fresh SQLite file and on a fresh PostgreSQL schema."""
    fixture = "sqlite_url" if request.param == "sqlite" else "pg_url"
    url: str = request.getfixturevalue(fixture)
    return url
