"""The text COPY the bulk writes use (``scheduler.store.copy_text``), against the real
PostgreSQL: every kind of value a job, plan or event row holds reads back as the same row
inserted with bound parameters (what psycopg's own adapters send), and a naive datetime or a
value with no text form is refused before anything is written."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa

from scheduler.domain import JobState
from scheduler.store import copy_text as copy_module
from scheduler.store.copy_text import copy_text

pytestmark = pytest.mark.postgres

metadata = sa.MetaData()
sample = sa.Table(
    "copy_sample",
    metadata,
    sa.Column("n", sa.Integer, primary_key=True),
    sa.Column("label", sa.Text),
    sa.Column("at", sa.DateTime(timezone=True)),
    sa.Column("flag", sa.Boolean),
    sa.Column("count", sa.BigInteger),
    sa.Column("value", sa.Float),
    sa.Column("document", sa.JSON),
)
COLUMNS = [c.name for c in sample.c]
ODD_TEXT = [
    "plain",
    "tab\there",
    "new\nline",
    "carriage\rreturn",
    "back\\slash \\N not null",
    "\\.",
    "",
    "unicode \u00e9\u4e2d\U0001f600",
    "quotes \"double\" and 'single'",
]


def _rows() -> list[tuple[Any, ...]]:
    rows: list[tuple[Any, ...]] = []
    for n, label in enumerate(ODD_TEXT):
        rows.append(
            (
                n,
                label,
                datetime(2026, 3, 2, 12, 30, 15, 123456, tzinfo=UTC) + timedelta(hours=n),
                n % 2 == 0,
                2**40 + n,
                n / 3,
                {"label": label, "list": [1, 2.5, None, True], "nested": {"x": "a\\b\n"}},
            )
        )
    at_offset = datetime(2026, 3, 2, 12, tzinfo=timezone(timedelta(hours=5, minutes=30)))
    rows += [
        (100, None, None, None, None, None, None),
        (101, JobState.PLANNED, at_offset, False, 0, float("inf"), ["a", "b\tc"]),
        (102, "nan", at_offset, True, -7, float("nan"), "a JSON string"),
        (103, "neg inf", at_offset, True, 7, float("-inf"), 3),
        (104, "numpy", at_offset, True, 7, np.float64(1.25), {}),
        (105, "tiny", at_offset, True, 7, 5e-324, []),
    ]
    return rows


def _read(conn: sa.Connection) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in conn.execute(sa.select(sample).order_by(sample.c.n))]


def _same(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
    def eq(x: Any, y: Any) -> bool:
        if isinstance(x, float) and isinstance(y, float) and x != x and y != y:
            return True  # NaN
        return bool(x == y)

    return len(a) == len(b) and all(eq(x, y) for x, y in zip(a, b, strict=True))


def test_copied_rows_read_back_as_the_same_rows_inserted_with_parameters(pg_url: str) -> None:
    engine = sa.create_engine(pg_url)
    metadata.create_all(engine)
    rows = _rows()
    document = COLUMNS.index("document")
    with engine.begin() as conn:
        copy_text(conn, f"COPY copy_sample ({', '.join(COLUMNS)}) FROM STDIN", rows, [document])
        copied = _read(conn)
        conn.execute(sa.delete(sample))
        conn.execute(
            sa.insert(sample),
            [
                dict(
                    zip(
                        COLUMNS,
                        [str(v) if isinstance(v, JobState) else v for v in row],
                        strict=True,
                    )
                )
                for row in rows
            ],
        )
        inserted = _read(conn)
    assert len(copied) == len(rows)
    for got, want in zip(copied, inserted, strict=True):
        assert _same(got, want), (got, want)
    by_n = {row[0]: row for row in copied}
    assert by_n[4][1] == "back\\slash \\N not null"  # a literal \N inside text is not NULL
    assert by_n[100][1:] == (None,) * 6
    assert by_n[101][1] == "planned"  # a str enum member is stored as its value
    assert by_n[101][2] == datetime(2026, 3, 2, 6, 30, tzinfo=UTC)  # the offset was kept
    engine.dispose()


def test_more_rows_than_a_block_arrive_whole(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(copy_module, "BLOCK_ROWS", 7)  # several writes, and a short last one
    engine = sa.create_engine(pg_url)
    metadata.create_all(engine)
    rows = [(n, f"row {n}\t{n}", None, None, n, None, None) for n in range(50)]
    with engine.begin() as conn:
        copy_text(conn, f"COPY copy_sample ({', '.join(COLUMNS)}) FROM STDIN", rows)
        assert [(r[0], r[1], r[4]) for r in _read(conn)] == [(r[0], r[1], r[4]) for r in rows]
    engine.dispose()


@pytest.mark.parametrize(
    ("value", "error"),
    [(datetime(2026, 3, 2, 12), ValueError), (object(), TypeError), (b"bytes", TypeError)],
)
def test_a_value_without_a_safe_text_form_is_refused_and_nothing_is_written(
    pg_url: str, value: object, error: type[Exception]
) -> None:
    engine = sa.create_engine(pg_url)
    metadata.create_all(engine)
    rows = [(1, "fine", None, None, None, None, None), (2, "bad", value, None, None, None, None)]
    with pytest.raises(error), engine.begin() as conn:
        copy_text(conn, f"COPY copy_sample ({', '.join(COLUMNS)}) FROM STDIN", rows)
    with engine.connect() as conn:
        assert _read(conn) == []
    engine.dispose()
