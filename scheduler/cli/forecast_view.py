"""``greenlight forecast show``: the next hours of a region's forecast as a sparkline and a
table of hourly means, with the best window marked."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from rich.markup import escape
from rich.table import Table

from scheduler.cli.render import console, fmt_duration, fmt_num, fmt_time, parse_time
from scheduler.cli.sparkline import Bucket, bucketize, sparkline, window_marks

SPARK_COLUMNS = 72
HOUR = timedelta(hours=1)


def forecast_now(forecast: Mapping[str, Any]) -> datetime | None:
    """The server's clock at the time of the answer: issue time + age (scheduler time, which
    the demo runs faster than the wall clock, so the CLI never reads its own clock for it)."""
    issued = parse_time(forecast.get("issued_at"))
    if issued is None or forecast.get("age_s") is None:
        return None
    return issued + timedelta(seconds=float(forecast["age_s"]))


def _points(forecast: Mapping[str, Any]) -> list[tuple[datetime, float]]:
    out = []
    for p in forecast["points"]:
        valid_at = parse_time(p["valid_at"])
        if valid_at is not None:
            out.append((valid_at, float(p["g_per_kwh"])))
    return out


def print_forecast(forecast: Mapping[str, Any], hours: float) -> None:
    """Header, sparkline with the best window under it, and the hourly table."""
    out = console()
    name = escape(str(forecast["region"]))
    now = forecast_now(forecast)
    points = _points(forecast)
    if now is None or not points:
        out.print(f"No forecast stored for {name} yet (try `greenlight forecast pull {name}`).")
        return
    start = now.replace(minute=0, second=0, microsecond=0)
    end = start + timedelta(hours=hours)
    best_start = parse_time(forecast.get("best_start"))
    best_end = parse_time(forecast.get("best_end"))
    stale = " [bold red](STALE)[/]" if forecast["stale"] else ""
    out.print(
        f"[bold]{name}[/] ({escape(str(forecast['grid_zone']))}, "
        f"{escape(str(forecast['provider']))}, {forecast['signal']} signal): issued "
        f"{fmt_time(forecast['issued_at'])}, {fmt_duration(forecast['age_s'])} old{stale}"
    )
    buckets = bucketize(points, float(forecast["resolution_s"]), start, end, SPARK_COLUMNS)
    values = [b.mean_g_per_kwh for b in buckets]
    known = [v for v in values if v is not None]
    out.print(sparkline(values), markup=False)
    out.print(window_marks(buckets, best_start, best_end), markup=False)
    if known:
        out.print(
            f"{fmt_time(start)} .. {fmt_time(end)}   min {min(known):.0f}  "
            f"max {max(known):.0f} g/kWh"
        )
    if best_start and best_end:
        shown = best_start < end and start < best_end
        out.print(
            f"best {fmt_duration(forecast['window_s'])} window (^): "
            f"{fmt_time(best_start)} -> {fmt_time(best_end)}"
            + ("" if shown else " (beyond the hours shown: see --hours)")
        )
    out.print(_hourly_table(points, forecast, start, end, best_start, best_end))


def _hourly_table(
    points: list[tuple[datetime, float]],
    forecast: Mapping[str, Any],
    start: datetime,
    end: datetime,
    best_start: datetime | None,
    best_end: datetime | None,
) -> Table:
    count = max(1, round((end - start) / HOUR))
    hourly: list[Bucket] = bucketize(points, float(forecast["resolution_s"]), start, end, count)
    table = Table(header_style="bold")
    table.add_column("HOUR (UTC)")
    table.add_column("MEAN (g/kWh)", justify="right")
    table.add_column("BEST")
    for b in hourly:
        if b.mean_g_per_kwh is None:
            continue
        best = (
            best_start is not None
            and best_end is not None
            and (b.start < best_end and best_start < b.end)
        )
        table.add_row(fmt_time(b.start), fmt_num(b.mean_g_per_kwh, 0), "<- best" if best else "")
    return table
