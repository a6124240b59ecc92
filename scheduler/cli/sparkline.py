"""A forecast in one terminal line: block characters scaled between the series' min and max,
with the best window marked on the line below. Pure functions of their inputs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

BLOCKS = "▁▂▃▄▅▆▇█"
GAP = " "
MARK = "^"


@dataclass(frozen=True, slots=True)
class Bucket:
    """Mean intensity (g/kWh) over ``[start, end)``; None where the series has no point."""

    start: datetime
    end: datetime
    mean_g_per_kwh: float | None


def bucketize(
    points: Sequence[tuple[datetime, float]],
    resolution_s: float,
    start: datetime,
    end: datetime,
    count: int,
) -> list[Bucket]:
    """Split ``[start, end)`` into ``count`` equal buckets, each the time-weighted mean of the
    points (each valid for ``resolution_s`` from its time) overlapping it."""
    if count <= 0 or end <= start:
        return []
    step = (end - start) / count
    width = timedelta(seconds=resolution_s)
    buckets = []
    for i in range(count):
        b_start, b_end = start + step * i, start + step * (i + 1)
        weighted, covered = 0.0, 0.0
        for valid_at, value in points:
            overlap_s = (min(b_end, valid_at + width) - max(b_start, valid_at)).total_seconds()
            if overlap_s > 0:
                weighted += value * overlap_s
                covered += overlap_s
        buckets.append(Bucket(b_start, b_end, weighted / covered if covered else None))
    return buckets


def sparkline(values: Sequence[float | None]) -> str:
    """One block character per value, lowest ``▁`` to highest ``█``; gaps for None."""
    known = [v for v in values if v is not None]
    if not known:
        return GAP * len(values)
    low, high = min(known), max(known)
    span = high - low
    out = []
    for v in values:
        if v is None:
            out.append(GAP)
        else:
            level = 0 if span == 0 else round((v - low) / span * (len(BLOCKS) - 1))
            out.append(BLOCKS[level])
    return "".join(out)


def window_marks(buckets: Sequence[Bucket], start: datetime | None, end: datetime | None) -> str:
    """``^`` under each bucket that overlaps ``[start, end)``, spaces elsewhere."""
    if start is None or end is None:
        return " " * len(buckets)
    return "".join(MARK if b.start < end and start < b.end else " " for b in buckets).rstrip()
