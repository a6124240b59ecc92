"""Run the Alembic migrations from code: ``greenlight db upgrade`` and the service's start.

Alembic is driven without ``alembic.ini`` (that file serves the ``alembic`` command line only):
the script location is the migrations folder and the URL is handed to its ``env.py`` as a config
attribute, so no URL passes through ini interpolation.

The folder is the repository's ``migrations/``, which a wheel ships as the package
``scheduler._migrations`` (a ``package-dir`` mapping in ``pyproject.toml``): the packaged copy
is used when it exists, else the checkout's (editable installs, the ``alembic`` command).
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from scheduler.domain import ConfigError
from scheduler.store.engine import create_store_engine

_PACKAGED_DIR = Path(__file__).resolve().parents[1] / "_migrations"
_CHECKOUT_DIR = Path(__file__).resolve().parents[2] / "migrations"


def migrations_dir() -> Path:
    """The folder holding ``env.py`` and ``versions/``: the wheel's copy, else the checkout's.
    Raises ConfigError when neither exists (an install that did not ship them)."""
    for candidate in (_PACKAGED_DIR, _CHECKOUT_DIR):
        if (candidate / "env.py").is_file():
            return candidate
    raise ConfigError(f"Alembic migrations not found at {_PACKAGED_DIR} or {_CHECKOUT_DIR}")


def alembic_config(database_url: str) -> Config:
    """An Alembic config for ``database_url`` over the migrations folder. Raises ConfigError
    when it is missing."""
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()).replace("%", "%%"))
    config.attributes["database_url"] = database_url
    config.attributes["configure_logger"] = False
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Migrate the database at ``database_url`` up to ``revision`` (creating it, for SQLite).
    Safe to run from several replicas at once, and a no-op when already there."""
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str) -> None:
    """Migrate down to ``revision`` (``"base"`` drops every Greenlight table)."""
    command.downgrade(alembic_config(database_url), revision)


def head_revision() -> str:
    """The newest revision in ``migrations/``."""
    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    if head is None:
        raise ConfigError(f"no Alembic revisions in {migrations_dir()}")
    return head


def current_revision(database_url: str) -> str | None:
    """The revision the database is at; None for a database never migrated."""
    engine = create_store_engine(database_url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    except sa.exc.SQLAlchemyError as e:
        raise ConfigError(f"cannot read the schema revision: {e}") from e
    finally:
        engine.dispose()
