"""``SqlStore``: one object that is every store port, over one engine."""

from __future__ import annotations

import sqlalchemy as sa

from scheduler.domain import GreenlightError
from scheduler.store.deployments import SqlDeploymentStore
from scheduler.store.energy import SqlEnergyStore
from scheduler.store.engine import create_store_engine
from scheduler.store.event_reads import SqlEventReads
from scheduler.store.forecasts import SqlForecastStore
from scheduler.store.jobs import SqlJobStore
from scheduler.store.plans import SqlPlanStore
from scheduler.store.progress import SqlProgressStore
from scheduler.store.regions import SqlRegionStore
from scheduler.store.savings import SqlSavingsStore
from scheduler.store.tokens import SqlTokenStore

__all__ = ["SqlStore", "create_store_engine"]


class SqlStore(
    SqlJobStore,
    SqlPlanStore,
    SqlEnergyStore,
    SqlForecastStore,
    SqlTokenStore,
    SqlRegionStore,
    SqlSavingsStore,
    SqlProgressStore,
    SqlDeploymentStore,
    SqlEventReads,
):
    """JobStore, EnergyStore, ForecastStore, TokenStore and RegionStore on SQLite or PostgreSQL.

    Build the engine with :func:`scheduler.store.engine.create_store_engine` (it sets up the
    locking the stores rely on) and the schema with :func:`scheduler.store.migrate.upgrade`.
    Every method runs in its own transaction; the object is safe to share between threads.
    """

    def ping(self) -> None:
        """Round-trip to the database. Raises GreenlightError when it cannot be reached."""
        try:
            with self._engine.connect() as conn:
                conn.execute(sa.select(1))
        except sa.exc.SQLAlchemyError as e:
            raise GreenlightError(f"database unreachable: {e}") from e

    def close(self) -> None:
        """Close every pooled connection (the engine stays usable and reconnects)."""
        self._engine.dispose()
