"""A caching wrapper that works around any ForecastProvider (as the Carbon Aware SDK's).

Forecasts are cached per zone and served again while ``now - fetched_at < ttl_s`` (``now`` is
the caller's, so the wrapper reads no clock for them). Actuals are cached per
``(zone, start, end)`` for ``ttl_s`` of the ``monotonic`` clock, since ``actuals`` has no
``now``. Concurrent callers for one zone share a single fetch. Faults are never cached: a
ProviderError passes through and the next call tries again.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from scheduler.domain import Forecast
from scheduler.ports import ForecastProvider

MAX_ACTUALS_ENTRIES = 256


@dataclass(frozen=True, slots=True)
class _Entry:
    forecast: Forecast
    fetched_at: datetime


class CachingProvider:
    """``inner`` behind a TTL cache. ``ttl_s`` is one TTL for every zone, or a per-zone mapping
    (zones it lacks use ``default_ttl_s``). Raises what ``inner`` raises."""

    def __init__(
        self,
        inner: ForecastProvider,
        ttl_s: float | Mapping[str, float],
        *,
        default_ttl_s: float = 300.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.inner = inner
        self.name = inner.name
        self._ttl_s = ttl_s
        self._default_ttl_s = default_ttl_s
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._zone_locks: dict[str, threading.Lock] = {}
        self._forecasts: dict[str, _Entry] = {}
        self._actuals: OrderedDict[tuple[str, datetime, datetime], tuple[float, Forecast]] = (
            OrderedDict()
        )
        self.fetches = 0

    def ttl_s(self, zone: str) -> float:
        if isinstance(self._ttl_s, Mapping):
            return self._ttl_s.get(zone, self._default_ttl_s)
        return self._ttl_s

    def forecast(self, zone: str, now: datetime) -> Forecast:
        with self._zone_lock(zone):
            entry = self._forecasts.get(zone)
            if entry is not None and 0 <= (now - entry.fetched_at).total_seconds() < self.ttl_s(
                zone,
            ):
                return entry.forecast
            forecast = self.inner.forecast(zone, now)
            self.fetches += 1
            self._forecasts[zone] = _Entry(forecast, now)
            return forecast

    def actuals(self, zone: str, start: datetime, end: datetime) -> Forecast:
        key = (zone, start, end)
        with self._zone_lock(zone):
            with self._lock:
                cached = self._actuals.get(key)
            if cached is not None and self._monotonic() - cached[0] < self.ttl_s(zone):
                return cached[1]
            series = self.inner.actuals(zone, start, end)
            self.fetches += 1
            with self._lock:
                self._actuals[key] = (self._monotonic(), series)
                self._actuals.move_to_end(key)
                while len(self._actuals) > MAX_ACTUALS_ENTRIES:
                    self._actuals.popitem(last=False)
            return series

    def invalidate(self, zone: str | None = None) -> None:
        """Forget what is cached for ``zone`` (every zone when None)."""
        with self._lock:
            if zone is None:
                self._forecasts.clear()
                self._actuals.clear()
                return
            self._forecasts.pop(zone, None)
            for key in [k for k in self._actuals if k[0] == zone]:
                del self._actuals[key]

    def _zone_lock(self, zone: str) -> threading.Lock:
        with self._lock:
            return self._zone_locks.setdefault(zone, threading.Lock())
