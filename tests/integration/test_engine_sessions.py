"""PostgreSQL sessions run in UTC (``scheduler.store.engine``), so ``timestamptz`` values come
back as UTC without a conversion per value, whatever zone the server or the URL sets; a
session in another zone still reads the same instants, converted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from scheduler.store.engine import create_store_engine
from scheduler.store.types import UtcDateTime

pytestmark = pytest.mark.postgres

AT = datetime(2026, 3, 2, 1, 30, tzinfo=timezone(timedelta(hours=9)))  # 2026-03-01T16:30Z


def _in_zone(url: str, zone: str) -> str:
    parsed = sa.make_url(url)
    options = parsed.query.get("options", "")
    return parsed.update_query_dict(
        {"options": f"{options} -ctimezone={zone}".strip()}
    ).render_as_string(hide_password=False)


def test_sessions_are_utc_and_instants_come_back_as_utc(pg_url: str) -> None:
    engine = create_store_engine(_in_zone(pg_url, "America/New_York"))
    table = sa.Table("stamps", sa.MetaData(), sa.Column("at", UtcDateTime()))
    try:
        with engine.begin() as conn:
            assert conn.execute(sa.text("SHOW TIME ZONE")).scalar_one() == "UTC"
            table.create(conn)
            conn.execute(sa.insert(table), [{"at": AT}])
        with engine.connect() as conn:
            read = conn.execute(sa.select(table.c.at)).scalar_one()
            assert read == AT
            assert read.tzinfo is UTC
            conn.execute(sa.text("SET TIME ZONE 'Asia/Tokyo'"))  # a session changed by hand
            read = conn.execute(sa.select(table.c.at)).scalar_one()
            assert read == AT
            assert read.utcoffset() == timedelta(0)
            conn.rollback()
    finally:
        engine.dispose()
