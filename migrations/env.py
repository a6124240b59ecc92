"""Alembic environment for Greenlight's schema.

The database URL comes from, in order: the ``database_url`` attribute set by
``scheduler.store.migrate`` (how the service and ``greenlight db upgrade`` run it),
``alembic -x url=...``, ``sqlalchemy.url`` in ``alembic.ini``, then ``GREENLIGHT_DATABASE_URL``.
The engine is built by ``create_store_engine``, so SQLite gets the same WAL and locking set-up
as the service. Each upgrade is one transaction (SQLite's DDL is transactional once SQLAlchemy
issues BEGIN itself), and concurrent upgrades by several replicas are serialised: SQLite by
``BEGIN IMMEDIATE``, PostgreSQL by a transaction-scoped advisory lock.
"""

from __future__ import annotations

import os
from logging.config import fileConfig

import sqlalchemy as sa
from alembic import context
from sqlalchemy.engine import Connection

from scheduler.domain import ConfigError
from scheduler.store.engine import create_store_engine, for_writing
from scheduler.store.tables import metadata

# Any constant works; it only has to be the same for every replica ("GLMIGRAT" in ASCII hex).
_PG_MIGRATION_LOCK_ID = 0x474C4D4947524154

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = metadata


def _database_url() -> str:
    url = (
        config.attributes.get("database_url")
        or context.get_x_argument(as_dictionary=True).get("url")
        or config.get_main_option("sqlalchemy.url")
        or os.environ.get("GREENLIGHT_DATABASE_URL")
    )
    if not url:
        raise ConfigError(
            "no database URL: set GREENLIGHT_DATABASE_URL, pass -x url=..., or set "
            "sqlalchemy.url in alembic.ini"
        )
    return str(url)


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        transactional_ddl=True,
        render_as_batch=connection.dialect.name == "sqlite",
    )


def run_migrations_offline() -> None:
    """Print the SQL instead of running it (``alembic upgrade head --sql``)."""
    context.configure(
        url=_database_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = create_store_engine(_database_url())
    try:
        with engine.connect() as connection:
            _configure(for_writing(connection))
            with context.begin_transaction():
                if connection.dialect.name == "postgresql":
                    connection.execute(
                        sa.text("SELECT pg_advisory_xact_lock(:lock_id)"),
                        {"lock_id": _PG_MIGRATION_LOCK_ID},
                    )
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
