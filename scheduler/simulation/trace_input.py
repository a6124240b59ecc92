"""What the simulator accepts as input, and how it refuses the rest.

Every refusal is a ``SimulationInputError``: its message names the file, the row (counted as in
a spreadsheet: the header is row 1) or the column, what was expected, and, where a format is in
question, the formats accepted. Column mappings (``--job-columns``, ``--carbon-columns``) and
times (epoch seconds or ISO 8601, naive ones in a given zone) are parsed here.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from scheduler.domain import GreenlightError

TIME_EXPECTED = "a time (epoch seconds or ISO 8601, e.g. 2023-06-01 12:00:00)"


class SimulationInputError(GreenlightError):
    """Input the simulator cannot use (a file, a column mapping, an option): the user's to fix.

    ``str(error)`` is one line that names the file (when there is one) and what was expected.
    """

    def __init__(self, message: str, path: Path | str | None = None) -> None:
        text = f"{path}: {message}" if path is not None else message
        super().__init__(text)
        self.path = None if path is None else str(path)


def row_message(row: int, column: str, expected: str, got: str) -> str:
    """``row N, column 'x': expected …, got '…'`` (the error adds the file)."""
    return f"row {row}, column {column!r}: expected {expected}, got {got!r}"


@dataclass(frozen=True, slots=True)
class CsvTable:
    """A CSV file's header and its non-blank rows, each with its row number in the file."""

    path: Path
    header: tuple[str, ...]
    rows: tuple[tuple[int, tuple[str, ...]], ...]

    def column(self, name: str) -> int:
        return self.header.index(name)


def read_csv(path: Path, what: str) -> CsvTable:
    """Read ``path`` (UTF-8, a BOM allowed); raises SimulationInputError naming it."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            header = tuple(h.strip() for h in next(reader, []))
            rows = tuple(
                (reader.line_num, tuple(row))
                for row in reader
                if row and any(cell.strip() for cell in row)
            )
    except FileNotFoundError as e:
        raise SimulationInputError(f"no such {what} file", path) from e
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise SimulationInputError(f"cannot read this {what} as UTF-8 CSV ({reason})", path) from e
    if not header:
        raise SimulationInputError(f"empty {what} file: expected a CSV header row", path)
    return CsvTable(path=path, header=header, rows=rows)


def cells(table: CsvTable, index: int) -> Iterator[tuple[int, str]]:
    """``(row number, cell)`` of one column; a short row gives an empty cell."""
    for number, row in table.rows:
        yield number, row[index].strip() if index < len(row) else ""


def parse_columns(
    text: str,
    *,
    option: str,
    keys: Sequence[str],
    required: Sequence[Sequence[str]],
) -> dict[str, str]:
    """``key=column,key=column`` into a dict; each group in ``required`` needs one of its keys.

    Raises SimulationInputError naming the option, the keys accepted and the groups required.
    """
    usage = ",".join(f"{k}=…" for k in keys)
    mapping: dict[str, str] = {}
    for part in (p.strip() for p in text.split(",")):
        key, sep, column = part.partition("=")
        key, column = key.strip(), column.strip()
        if not sep or not column or key not in keys:
            raise SimulationInputError(
                f"{option}: cannot read {part!r}: expected key=column with keys "
                f"{', '.join(keys)} (e.g. {option} {usage})"
            )
        if key in mapping:
            raise SimulationInputError(f"{option}: {key} is given twice")
        mapping[key] = column
    for group in required:
        present = [k for k in group if k in mapping]
        if not present:
            raise SimulationInputError(f"{option}: {' or '.join(group)} is required (got {text!r})")
        if len(present) > 1:
            raise SimulationInputError(f"{option}: give {' or '.join(group)}, not both")
    return mapping


def missing_columns(table: CsvTable, mapping: Mapping[str, str]) -> list[str]:
    return [column for column in mapping.values() if column not in table.header]


def time_zone(name: str | None) -> tzinfo:
    """A zone for naive times: an IANA name (``Europe/Berlin``), ``UTC`` or an offset
    (``+02:00``); raises SimulationInputError."""
    if name is None or name.upper() in ("UTC", "Z"):
        return UTC
    if name[:1] in "+-":
        sign = -1 if name[0] == "-" else 1
        hours, _, minutes = name[1:].partition(":")
        try:
            offset = timedelta(hours=int(hours), minutes=int(minutes or 0))
        except ValueError:
            offset = None
        if offset is not None and offset < timedelta(hours=24):
            return timezone(sign * offset)
    else:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    raise SimulationInputError(
        f"--carbon-tz: unknown time zone {name!r}: expected an IANA name (Europe/Berlin), "
        "UTC or an offset (+02:00)"
    )


def parse_time(value: str, zone: tzinfo = UTC) -> datetime | None:
    """An aware UTC datetime from epoch seconds or ISO 8601 (naive: in ``zone``); None when
    ``value`` is neither."""
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if math.isfinite(seconds):
        return datetime.fromtimestamp(seconds, tz=UTC)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=zone)
    return parsed.astimezone(UTC)


def parse_number(value: str) -> float | None:
    """A finite float, or None."""
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def parse_date(value: str, option: str) -> datetime:
    """``YYYY-MM-DD`` (or a full ISO time) as aware UTC; raises SimulationInputError."""
    parsed = parse_time(value) if not value.replace(".", "").isdigit() else None
    if parsed is None:
        raise SimulationInputError(
            f"{option}: expected a date (YYYY-MM-DD) or an ISO 8601 time, got {value!r}"
        )
    return parsed


_DURATION_UNITS_S = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 7 * 86400.0}


def parse_duration_s(value: str, option: str) -> float:
    """``90``, ``90s``, ``15m``, ``36h``, ``30d`` or ``2w`` as seconds (>= 0); raises
    SimulationInputError."""
    text = value.strip().lower()
    unit = text[-1:] if text[-1:] in _DURATION_UNITS_S else "s"
    number = parse_number(text[:-1] if text[-1:] in _DURATION_UNITS_S else text)
    if number is None or number < 0:
        raise SimulationInputError(
            f"{option}: expected a duration such as 3600, 90m, 36h or 30d, got {value!r}"
        )
    return number * _DURATION_UNITS_S[unit]
