"""Scheduled refresh: fetch every region's forecast and recent actuals into the forecast store.

One :meth:`ForecastRefresher.refresh` call decides, for each distinct ``(provider, zone)``:

- **skip** when the store's latest forecast for the zone from that provider is younger than the
  region's refresh interval (a restarted service does not refetch everything); series are
  keyed by ``(provider, zone)``, so two providers of one zone never stand in for each other;
- **back off** while a previous failure's jittered exponential delay (at least the provider's
  Retry-After) has not passed; a forced refresh (``greenlight forecast pull``) clears a
  backoff caused by refused credentials (the operator has just fixed them), never one that
  honours a provider's Retry-After or a struggling provider;
- otherwise **fetch** in a thread pool (regions in parallel), each call paced by its
  provider's token bucket, then append the forecast (when newer than what is stored) and the
  actuals since the last stored ones to the store, on the calling thread.

Provider faults never escape: they become a per-region error with ``next_attempt_at``; a
failure fetching actuals is logged and reported in the region's message like a forecast
failure. Call ``refresh`` often (every minute or so); the skip and backoff rules decide what is
fetched.
"""

from __future__ import annotations

import enum
import logging
import random
import threading
import time
from collections.abc import Callable, Collection, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from scheduler.domain import ConfigError, Forecast, ProviderError, SeriesKind
from scheduler.forecasts.http import ProviderAuthError
from scheduler.forecasts.throttle import (
    DEFAULT_RATE_LIMITS,
    BackoffPolicy,
    RateLimit,
    TokenBucket,
)
from scheduler.ports import Clock, ForecastProvider, ForecastStore

logger = logging.getLogger(__name__)

DEFAULT_REFRESH_INTERVAL_S = 900.0
# A region's provider and zone, optionally with its refresh interval in seconds.
RefreshTarget = tuple[ForecastProvider, str] | tuple[ForecastProvider, str, float]
DEFAULT_ACTUALS_WINDOW_S = 24 * 3600.0


class RefreshStatus(enum.StrEnum):
    OK = "ok"  # fetched and stored
    SKIPPED = "skipped"  # the stored forecast is still fresh
    BACKOFF = "backoff"  # waiting after earlier failures
    RATE_LIMITED = "rate-limited"  # no call budget left for this provider now
    ERROR = "error"  # the provider failed this time


@dataclass(frozen=True, slots=True, kw_only=True)
class RegionRefresh:
    """What one refresh did for one region. ``message`` explains errors (and actuals faults
    on an otherwise good refresh); ``next_attempt_at`` is set when the region waits."""

    region: str
    zone: str
    provider: str
    status: RefreshStatus
    message: str | None = None
    next_attempt_at: datetime | None = None
    forecast_issued_at: datetime | None = None
    forecast_end: datetime | None = None
    actual_points: int = 0
    failures: int = 0

    @property
    def ok(self) -> bool:
        """The region has a fresh forecast in the store (just fetched, or still fresh)."""
        return self.status in (RefreshStatus.OK, RefreshStatus.SKIPPED)


@dataclass(frozen=True, slots=True, kw_only=True)
class RefreshResult:
    """Outcome per region name, the number of provider calls made and the wall time taken."""

    at: datetime
    regions: Mapping[str, RegionRefresh]
    calls: int = 0
    elapsed_s: float = 0.0

    def with_status(self, *statuses: RefreshStatus) -> list[str]:
        return sorted(n for n, r in self.regions.items() if r.status in statuses)

    @property
    def failed(self) -> list[str]:
        return self.with_status(RefreshStatus.ERROR)


@dataclass(slots=True)
class _ZoneState:
    failures: int = 0
    next_attempt_at: datetime | None = None
    last_error: str | None = None
    # The last failure was refused credentials (401/403): a forced pull may retry at once.
    auth_failure: bool = False
    # When this process last stored a good forecast: a provider whose issue time lags (hourly
    # model runs) must not be refetched on every call just because its ``issued_at`` is old.
    fetched_at: datetime | None = None


@dataclass(slots=True)
class _Fetch:
    """Work and outcome for one (provider, zone), filled in by a worker thread."""

    provider: ForecastProvider
    zone: str
    regions: list[str]
    actuals_start: datetime | None
    forecast: Forecast | None = None
    actuals: Forecast | None = None
    error: ProviderError | None = None
    actuals_error: str | None = None
    wait_s: float = 0.0
    calls: int = 0
    stored_issued_at: datetime | None = field(default=None)


class ForecastRefresher:
    """Keeps the forecast store filled for a set of regions. Thread-safe; never raises for
    provider faults (a store failure does propagate).

    ``providers`` maps a region name to ``(provider, zone)`` or ``(provider, zone,
    refresh_interval_s)``; an interval given there wins over ``refresh_intervals_s``, and
    regions with neither use ``default_interval_s``. Regions sharing one provider object and
    zone are fetched once. ``rate_limits`` is keyed by provider name (defaults:
    :data:`DEFAULT_RATE_LIMITS`); a call that cannot get a token within ``rate_limit_wait_s``
    is deferred. ``actuals_window_s`` bounds how far back actuals are fetched.
    """

    def __init__(
        self,
        providers: Mapping[str, RefreshTarget],
        store: ForecastStore,
        clock: Clock,
        *,
        refresh_intervals_s: Mapping[str, float] | None = None,
        default_interval_s: float = DEFAULT_REFRESH_INTERVAL_S,
        rate_limits: Mapping[str, RateLimit] | None = None,
        max_workers: int = 8,
        actuals_window_s: float = DEFAULT_ACTUALS_WINDOW_S,
        backoff: BackoffPolicy | None = None,
        rate_limit_wait_s: float = 5.0,
        rng: random.Random | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._providers = {name: (t[0], t[1]) for name, t in providers.items()}
        self._store = store
        self._clock = clock
        self._intervals_s = dict(refresh_intervals_s or {})
        self._intervals_s.update({n: t[2] for n, t in providers.items() if len(t) == 3})
        self._default_interval_s = default_interval_s
        self._max_workers = max(1, max_workers)
        self._actuals_window_s = actuals_window_s
        self._backoff = backoff or BackoffPolicy()
        self._rate_limit_wait_s = rate_limit_wait_s
        self._rng = rng or random.Random()
        limits = DEFAULT_RATE_LIMITS if rate_limits is None else rate_limits
        self._buckets = {
            name: TokenBucket(limit, monotonic=monotonic, sleep=sleep)
            for name, limit in limits.items()
        }
        self._states: dict[tuple[int, str], _ZoneState] = {}
        self._last: dict[str, RegionRefresh] = {}
        self._lock = threading.Lock()  # guards _last
        self._refresh_lock = threading.Lock()  # one refresh at a time (scheduler + manual pull)

    @property
    def regions(self) -> tuple[str, ...]:
        return tuple(self._providers)

    def interval_s(self, region: str) -> float:
        return self._intervals_s.get(region, self._default_interval_s)

    def last_results(self) -> dict[str, RegionRefresh]:
        """The latest outcome per region (regions never refreshed are absent)."""
        with self._lock:
            return dict(self._last)

    def refresh(
        self,
        now: datetime | None = None,
        regions: Collection[str] | None = None,
        *,
        force: bool = False,
    ) -> RefreshResult:
        """Refresh ``regions`` (all when None) as of ``now`` (the clock's when None).

        ``force`` ignores freshness (not backoff, which honours providers' Retry-After).
        Raises ConfigError for an unknown region name.
        """
        started_s = time.perf_counter()
        now = now or self._clock.now()
        names = list(self._providers) if regions is None else list(regions)
        unknown = [n for n in names if n not in self._providers]
        if unknown:
            raise ConfigError(f"unknown region(s): {', '.join(unknown)}")
        with self._refresh_lock:
            outcomes, fetches = self._plan(now, names, force)
            self._run(fetches, now)
            for fetch in fetches:
                outcomes.update(self._record(fetch, now))
        with self._lock:
            self._last.update(outcomes)
        return RefreshResult(
            at=now,
            regions=outcomes,
            calls=sum(f.calls for f in fetches),
            elapsed_s=time.perf_counter() - started_s,
        )

    def _plan(
        self,
        now: datetime,
        names: list[str],
        force: bool,
    ) -> tuple[dict[str, RegionRefresh], list[_Fetch]]:
        groups: dict[tuple[int, str], list[str]] = {}
        for name in names:
            provider, zone = self._providers[name]
            groups.setdefault((id(provider), zone), []).append(name)
        outcomes: dict[str, RegionRefresh] = {}
        fetches: list[_Fetch] = []
        for key, members in groups.items():
            provider, zone = self._providers[members[0]]
            state = self._states.setdefault(key, _ZoneState())
            if force and state.auth_failure:
                state.next_attempt_at = None
            if state.next_attempt_at is not None and now < state.next_attempt_at:
                outcomes.update(
                    self._outcomes(
                        members,
                        zone,
                        provider,
                        RefreshStatus.BACKOFF,
                        message=state.last_error,
                        state=state,
                    )
                )
                continue
            latest = self._store.latest_forecast(zone, now, provider=provider.name)
            interval_s = min(self.interval_s(m) for m in members)
            known = [t for t in (latest.issued_at if latest else None, state.fetched_at) if t]
            fresh_since = max(known, default=None)
            if not force and fresh_since is not None and _age_s(fresh_since, now) < interval_s:
                outcomes.update(
                    self._outcomes(
                        members,
                        zone,
                        provider,
                        RefreshStatus.SKIPPED,
                        forecast=latest,
                        next_attempt_at=fresh_since + timedelta(seconds=interval_s),
                    )
                )
                continue
            fetches.append(
                _Fetch(
                    provider=provider,
                    zone=zone,
                    regions=members,
                    actuals_start=self._actuals_start(provider, zone, now),
                    stored_issued_at=latest.issued_at if latest else None,
                )
            )
        return outcomes, fetches

    def _actuals_start(
        self, provider: ForecastProvider, zone: str, now: datetime
    ) -> datetime | None:
        """Where the actuals to fetch begin: the last stored slot (it may have been a partial
        estimate), bounded by the window; None when there is nothing new to ask for."""
        start = now - timedelta(seconds=self._actuals_window_s)
        last = self._store.latest_forecast(zone, now, SeriesKind.ACTUAL, provider=provider.name)
        if last is not None and last.points:
            start = max(start, last.points[-1].valid_at)
        return start if start < now else None

    def _run(self, fetches: list[_Fetch], now: datetime) -> None:
        if not fetches:
            return
        workers = min(self._max_workers, len(fetches))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="refresh") as pool:
            list(pool.map(lambda f: self._fetch(f, now), fetches))

    def _fetch(self, fetch: _Fetch, now: datetime) -> None:
        """Worker thread: call the provider, recording faults instead of raising them."""
        try:
            fetch.forecast = self._call(fetch, lambda: fetch.provider.forecast(fetch.zone, now))
        except ProviderError as error:
            fetch.error = error
        except Exception as error:  # an adapter bug must not stop the other regions' refresh
            logger.exception("refresh of zone %s crashed", fetch.zone)
            fetch.error = ProviderError(fetch.provider.name, f"unexpected {error!r}")
        if fetch.wait_s or fetch.actuals_start is None:
            return
        if fetch.error is not None and fetch.error.retryable:
            return  # the provider is struggling: do not pile more calls on it
        start = fetch.actuals_start
        try:
            fetch.actuals = self._call(
                fetch, lambda: fetch.provider.actuals(fetch.zone, start, now)
            )
            if fetch.actuals is None:
                fetch.actuals_error = "deferred by the rate limit"
        except ProviderError as error:
            fetch.actuals_error = error.message
        except Exception as error:  # as above
            logger.exception("actuals refresh of zone %s crashed", fetch.zone)
            fetch.actuals_error = f"unexpected {error!r}"

    def _call(self, fetch: _Fetch, call: Callable[[], Forecast]) -> Forecast | None:
        bucket = self._buckets.get(fetch.provider.name)
        if bucket is not None:
            wait_s = bucket.acquire(self._rate_limit_wait_s)
            if wait_s:
                fetch.wait_s = wait_s
                return None
        fetch.calls += 1
        return call()

    def _record(self, fetch: _Fetch, now: datetime) -> dict[str, RegionRefresh]:
        """Calling thread: store what came back and update the zone's backoff state."""
        key = (id(fetch.provider), fetch.zone)
        state = self._states[key]
        if fetch.actuals is not None:
            self._store.append_forecast(fetch.actuals)
        actual_points = len(fetch.actuals.points) if fetch.actuals else 0
        if fetch.error is not None:
            state.failures += 1
            delay_s = self._backoff.delay_s(state.failures, fetch.error, self._rng)
            state.next_attempt_at = now + timedelta(seconds=delay_s)
            state.last_error = str(fetch.error)
            state.auth_failure = isinstance(fetch.error, ProviderAuthError)
            logger.warning(
                "forecast refresh for %s failed (%d in a row): %s; next try at %s",
                fetch.zone,
                state.failures,
                fetch.error,
                state.next_attempt_at,
            )
            return self._outcomes(
                fetch.regions,
                fetch.zone,
                fetch.provider,
                RefreshStatus.ERROR,
                message=state.last_error,
                state=state,
                actual_points=actual_points,
            )
        if fetch.forecast is None:
            return self._outcomes(
                fetch.regions,
                fetch.zone,
                fetch.provider,
                RefreshStatus.RATE_LIMITED,
                message=f"rate limit: next call allowed in {fetch.wait_s:.2f}s",
                next_attempt_at=now + timedelta(seconds=fetch.wait_s),
            )
        if fetch.stored_issued_at is None or fetch.forecast.issued_at > fetch.stored_issued_at:
            self._store.append_forecast(fetch.forecast)
        state.failures, state.next_attempt_at, state.last_error = 0, None, None
        state.auth_failure = False
        state.fetched_at = now
        if fetch.actuals_error:
            logger.warning(
                "actuals refresh for %s (%s) failed: %s",
                fetch.zone,
                fetch.provider.name,
                fetch.actuals_error,
            )
        return self._outcomes(
            fetch.regions,
            fetch.zone,
            fetch.provider,
            RefreshStatus.OK,
            message=f"actuals: {fetch.actuals_error}" if fetch.actuals_error else None,
            forecast=fetch.forecast,
            actual_points=actual_points,
        )

    @staticmethod
    def _outcomes(
        regions: list[str],
        zone: str,
        provider: ForecastProvider,
        status: RefreshStatus,
        *,
        message: str | None = None,
        state: _ZoneState | None = None,
        forecast: Forecast | None = None,
        next_attempt_at: datetime | None = None,
        actual_points: int = 0,
    ) -> dict[str, RegionRefresh]:
        return {
            name: RegionRefresh(
                region=name,
                zone=zone,
                provider=provider.name,
                status=status,
                message=message,
                next_attempt_at=state.next_attempt_at if state else next_attempt_at,
                forecast_issued_at=forecast.issued_at if forecast else None,
                forecast_end=forecast.end if forecast else None,
                actual_points=actual_points,
                failures=state.failures if state else 0,
            )
            for name in regions
        }


def _age_s(since: datetime, now: datetime) -> float:
    """Seconds since ``since``; a moment "in the future" (the clock moved back) counts as stale."""
    age_s = (now - since).total_seconds()
    return age_s if age_s >= 0 else float("inf")
