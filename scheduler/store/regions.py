"""The SQL RegionStore: a copy of the configured regions, for queries and reports."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from scheduler.domain import Region
from scheduler.store.engine import SqlAdapter, read_transaction, write_transaction
from scheduler.store.rows import region_from_row, region_values
from scheduler.store.tables import regions


class SqlRegionStore(SqlAdapter):
    """RegionStore over SQLAlchemy Core."""

    def sync_regions(self, regions_: Sequence[Region]) -> None:
        """Make the stored regions exactly ``regions_``, atomically (configuration is their
        source). Raises ValueError if two share a name."""
        names = [r.name for r in regions_]
        if len(set(names)) != len(names):
            raise ValueError(f"region names must be unique, got {names}")
        with write_transaction(self._engine) as conn:
            conn.execute(sa.delete(regions))
            if regions_:
                conn.execute(sa.insert(regions), [region_values(r) for r in regions_])

    def list_regions(self) -> list[Region]:
        """Every stored region, by name."""
        with read_transaction(self._engine) as conn:
            rows = conn.execute(sa.select(regions).order_by(regions.c.name)).mappings().all()
        return [region_from_row(row) for row in rows]
