"""Column types shared by the tables."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Dialect


class UtcDateTime(sa.types.TypeDecorator[datetime]):
    """An aware UTC datetime on every backend.

    PostgreSQL stores ``timestamptz``. SQLite has no time zones, so values are converted to UTC
    and stored naive (SQLAlchemy's fixed-width text format, which sorts chronologically), then
    made aware again on the way out. A naive datetime is refused on the way in: its zone is
    unknown, and guessing would shift jobs by hours.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: Greenlight stores aware UTC only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None or value.tzinfo is UTC:  # PostgreSQL sessions are set to UTC
            return value
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def utc_iso(value: datetime) -> str:
    """``value`` in UTC as ISO-8601, remembered by instant: a plan cycle writes the same few
    hundred slot boundaries and its own time into 100,000 plans (their columns and their JSON
    documents), and formatting each anew was a fifth of that bulk write."""
    text = _ISO_SEEN.get(value)
    if text is None:
        if len(_ISO_SEEN) >= _ISO_KEEP:
            _ISO_SEEN.clear()
        text = _ISO_SEEN[value] = value.astimezone(UTC).isoformat()
    return text


_ISO_KEEP = 8192
_ISO_SEEN: dict[datetime, str] = {}
