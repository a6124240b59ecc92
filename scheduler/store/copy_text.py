"""PostgreSQL ``COPY ... FROM STDIN`` in text format, written a block of rows at a time.

psycopg's ``Copy.write_row`` passes every value through a Python dumper and escapes it there:
for the store's bulk writes (a batch of 10,000 jobs and their events; the first plan cycle's
100,000 plans and their events) that cost more CPU than PostgreSQL spends storing the rows.
Here each value becomes its text form by its exact type, rows are joined as strings and a
block is handed to psycopg in one ``write``.

Text COPY: tab between fields, newline after each row, ``\\N`` for NULL, and a backslash,
tab, newline or carriage return inside a value escaped with a backslash. A datetime must be
aware (its offset is written; the store keeps UTC only). A value of a JSON column is encoded
as JSON first (the same text ``json.dumps`` gives), whatever its Python type.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Collection, Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection

from scheduler.store.types import utc_iso

NULL = "\\N"
BLOCK_ROWS = 5_000
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_SPECIAL = re.compile(r"[\\\t\n\r]").search
_JSON = json.JSONEncoder()


def escape(text: str) -> str:
    """``text`` as a text COPY field (most values need no escaping: one scan finds that)."""
    return text.translate(_ESCAPES) if _SPECIAL(text) else text


def text_value(value: Any) -> str:
    """``value`` as a field of a text COPY row (escaped)."""
    kind = type(value)
    if kind is str:
        return escape(value)
    if value is None:
        return NULL
    if kind is datetime:
        return _timestamp(value)
    if kind is bool:
        return "t" if value else "f"
    if kind is int:
        return str(value)
    if kind is float:
        if math.isfinite(value):
            return repr(value)
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, str):  # a str enum member: its value
        return escape(str.__str__(value))
    if isinstance(value, float):  # numpy's float64, say
        return text_value(float(value))
    if isinstance(value, int):
        return str(int(value))
    raise TypeError(f"no COPY text form for {kind.__name__}")


def _timestamp(value: datetime) -> str:
    """An aware datetime as UTC ISO-8601; a naive one is refused (its zone is unknown)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value!r}: Greenlight stores aware UTC only")
    return utc_iso(value)


def json_value(value: Any) -> str:
    """A JSON column's field: ``value`` encoded as JSON, then escaped (NULL for None)."""
    if value is None:
        return NULL
    return escape(_JSON.encode(value))


def copy_text(
    conn: Connection,
    statement: str,
    rows: Iterable[Sequence[Any]],
    json_columns: Collection[int] = (),
) -> None:
    """Run ``statement`` (a ``COPY ... FROM STDIN``) inside ``conn``'s transaction, sending
    ``rows``; the values at the positions ``json_columns`` are JSON documents."""
    copy_lines(conn, statement, text_lines(rows, json_columns))


def text_lines(rows: Iterable[Sequence[Any]], json_columns: Collection[int] = ()) -> Iterator[str]:
    """``rows`` as text COPY lines (no newline); the values at the positions ``json_columns``
    are JSON documents."""
    as_json = frozenset(json_columns)
    if as_json:
        return (
            "\t".join(json_value(v) if i in as_json else text_value(v) for i, v in enumerate(row))
            for row in rows
        )
    return ("\t".join(map(text_value, row)) for row in rows)


def copy_lines(conn: Connection, statement: str, lines: Iterable[str]) -> None:
    """Run ``statement`` (a ``COPY ... FROM STDIN``) inside ``conn``'s transaction, sending
    ``lines``: rows already in text COPY form (fields escaped, tab-separated, no newline), as
    the hot bulk paths build them without a call per value."""
    raw: Any = conn.connection.dbapi_connection
    with raw.cursor() as cursor, cursor.copy(statement) as copy:
        block: list[str] = []
        for line in lines:
            block.append(line)
            if len(block) >= BLOCK_ROWS:
                copy.write("\n".join(block) + "\n")
                block.clear()
        if block:
            copy.write("\n".join(block) + "\n")
