"""An in-memory, thread-safe ForecastStore for simulations, benchmarks and tests.

Same contract as the SQL store (:class:`scheduler.ports.ForecastStore`), without durability:
series keyed by ``(zone, provider)``, every read optionally narrowed to one provider.
"""

from __future__ import annotations

import threading
from datetime import datetime

from scheduler.domain import Forecast, IntensityPoint, SeriesKind


class MemoryForecastStore:
    """Every appended series, by zone, in append order. Nothing is ever overwritten."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._series: dict[str, list[Forecast]] = {}

    def append_forecast(self, forecast: Forecast) -> None:
        with self._lock:
            self._series.setdefault(forecast.zone, []).append(forecast)

    def latest_forecast(
        self,
        zone: str,
        as_of: datetime,
        kind: SeriesKind = SeriesKind.FORECAST,
        *,
        provider: str | None = None,
    ) -> Forecast | None:
        """The series of ``kind`` (from ``provider`` when given) with the greatest
        ``issued_at <= as_of`` (the later appended on a tie)."""
        best: Forecast | None = None
        for series in self._snapshot(zone, provider):
            if (
                series.kind is kind
                and series.issued_at <= as_of
                and (best is None or series.issued_at >= best.issued_at)
            ):
                best = series
        return best

    def actuals(
        self, zone: str, start: datetime, end: datetime, *, provider: str | None = None
    ) -> Forecast | None:
        """Actual points valid in ``[start, end)`` over every stored actual series; the latest
        issue wins for a given ``valid_at``. None when there are none."""
        chosen = sorted(
            (s for s in self._snapshot(zone, provider) if s.kind is SeriesKind.ACTUAL),
            key=lambda s: s.issued_at,
        )
        merged: dict[datetime, float] = {}
        for series in chosen:
            merged.update(
                (p.valid_at, p.g_per_kwh) for p in series.points if start <= p.valid_at < end
            )
        if not merged:
            return None
        latest = chosen[-1]
        return Forecast(
            zone=zone,
            provider=latest.provider,
            kind=SeriesKind.ACTUAL,
            issued_at=latest.issued_at,
            resolution_s=min(s.resolution_s for s in chosen),
            signal=latest.signal,
            points=tuple(IntensityPoint(valid_at=t, g_per_kwh=merged[t]) for t in sorted(merged)),
        )

    def forecasts_between(
        self, zone: str, start: datetime, end: datetime, *, provider: str | None = None
    ) -> list[Forecast]:
        """Forecasts (not actuals) issued in ``[start, end)``, oldest first."""
        found = [
            s
            for s in self._snapshot(zone, provider)
            if s.kind is SeriesKind.FORECAST and start <= s.issued_at < end
        ]
        return sorted(found, key=lambda s: s.issued_at)

    def prune_forecasts(self, before: datetime) -> int:
        """Drop series issued before ``before``; returns how many went."""
        removed = 0
        with self._lock:
            for zone, series in self._series.items():
                kept = [s for s in series if s.issued_at >= before]
                removed += len(series) - len(kept)
                self._series[zone] = kept
        return removed

    def count(self, zone: str | None = None) -> int:
        """How many series are stored (for one zone, or all)."""
        with self._lock:
            if zone is not None:
                return len(self._series.get(zone, []))
            return sum(len(s) for s in self._series.values())

    def _snapshot(self, zone: str, provider: str | None = None) -> list[Forecast]:
        """The zone's series (only ``provider``'s when given): series are keyed by both."""
        with self._lock:
            series = list(self._series.get(zone, []))
        return series if provider is None else [s for s in series if s.provider == provider]
