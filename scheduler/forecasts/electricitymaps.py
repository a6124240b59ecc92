"""Electricity Maps API v3: latest, history (actuals) and forecast for a zone.

Auth is the ``auth-token`` header. Values are already gCO2eq/kWh (life-cycle by default), at
the zone's native resolution (hourly on most plans).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from scheduler.domain import Forecast, IntensityPoint, ProviderError, SeriesKind
from scheduler.forecasts.http import HttpSettings, JsonHttpClient
from scheduler.forecasts.validation import (
    DEFAULT_MIN_HORIZON_S,
    build_series,
    clamp_issued_at,
    json_array,
    json_field,
    optional_number,
    parse_time,
    trim_actuals,
    trim_forecast,
)

PROVIDER = "electricitymaps"
DEFAULT_BASE_URL = "https://api.electricitymap.org/v3"
AUTH_HEADER = "auth-token"
DEFAULT_HORIZON_S = 48 * 3600.0
# /history covers the last 24 h; older windows go through /past-range, which caps one query.
HISTORY_SPAN_S = 24 * 3600.0
PAST_RANGE_MAX_SPAN_S = 10 * 24 * 3600.0
# History's first hour may start up to one hour after "24 h ago": still counts as covering it.
HISTORY_START_SLACK_S = 3600.0


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class ElectricityMapsClient:
    """Raw v3 endpoints: paths, query strings and the auth header. Returns decoded JSON."""

    def __init__(
        self,
        api_key: str,
        base_url: str = DEFAULT_BASE_URL,
        *,
        http_settings: HttpSettings | None = None,
        auth_header: str = AUTH_HEADER,
    ) -> None:
        self.http = JsonHttpClient(
            PROVIDER,
            base_url,
            settings=http_settings,
            headers={auth_header: api_key},
        )

    def latest(self, zone: str) -> Any:
        return self.http.get_json("carbon-intensity/latest", params={"zone": zone})

    def history(self, zone: str) -> Any:
        return self.http.get_json("carbon-intensity/history", params={"zone": zone})

    def past_range(self, zone: str, start: datetime, end: datetime) -> Any:
        return self.http.get_json(
            "carbon-intensity/past-range",
            params={"zone": zone, "start": _iso(start), "end": _iso(end)},
        )

    def forecast(self, zone: str) -> Any:
        return self.http.get_json("carbon-intensity/forecast", params={"zone": zone})


class ElectricityMapsProvider:
    """Electricity Maps as a ForecastProvider. Raises ProviderError for every fault.

    ``horizon_s`` trims forecasts; a forecast reaching less than ``min_horizon_s`` past ``now``
    is rejected.
    """

    name = PROVIDER

    def __init__(
        self,
        client: ElectricityMapsClient,
        *,
        horizon_s: float = DEFAULT_HORIZON_S,
        min_horizon_s: float = DEFAULT_MIN_HORIZON_S,
    ) -> None:
        self.client = client
        self.horizon_s = horizon_s
        self.min_horizon_s = min_horizon_s

    def latest(self, zone: str) -> IntensityPoint:
        """The zone's current hour, g/kWh."""
        body = self.client.latest(zone)
        _check_zone(body, zone)
        series = build_series(
            provider=PROVIDER,
            zone=zone,
            kind=SeriesKind.ACTUAL,
            issued_at=parse_time(PROVIDER, json_field(PROVIDER, body, "datetime")),
            points=_points([body]),
        )
        return series.points[-1]

    def forecast(self, zone: str, now: datetime) -> Forecast:
        body = self.client.forecast(zone)
        _check_zone(body, zone)
        updated = body.get("updatedAt")
        series = build_series(
            provider=PROVIDER,
            zone=zone,
            kind=SeriesKind.FORECAST,
            issued_at=clamp_issued_at(parse_time(PROVIDER, updated) if updated else None, now),
            points=_points(json_array(PROVIDER, body, "forecast")),
        )
        return trim_forecast(series, now, self.horizon_s, self.min_horizon_s)

    def actuals(self, zone: str, start: datetime, end: datetime) -> Forecast:
        history = self.client.history(zone)
        _check_zone(history, zone)
        items = list(json_array(PROVIDER, history, "history"))
        first = min(
            (parse_time(PROVIDER, json_field(PROVIDER, i, "datetime")) for i in items), default=None
        )
        if first is None or first > start + timedelta(seconds=HISTORY_START_SLACK_S):
            items += self._past_items(zone, start, min(end, first) if first else end)
        series = build_series(
            provider=PROVIDER,
            zone=zone,
            kind=SeriesKind.ACTUAL,
            issued_at=end,
            points=_points(items),
        )
        return trim_actuals(series, start, end)

    def _past_items(self, zone: str, start: datetime, end: datetime) -> list[Any]:
        found: list[Any] = []
        for chunk_start, chunk_end in _chunks(start, end, PAST_RANGE_MAX_SPAN_S):
            body = self.client.past_range(zone, chunk_start, chunk_end)
            _check_zone(body, zone)
            found.extend(json_array(PROVIDER, body, "data"))
        return found


def _chunks(start: datetime, end: datetime, span_s: float) -> Iterator[tuple[datetime, datetime]]:
    step = timedelta(seconds=span_s)
    while start < end:
        yield start, min(end, start + step)
        start += step


def _check_zone(body: object, zone: str) -> None:
    """A body for another zone than asked is garbage (a proxy mix-up, a wrong default zone)."""
    got = json_field(PROVIDER, body, "zone")
    if got != zone:
        raise ProviderError(PROVIDER, f"asked for zone {zone!r}, got data for {got!r}")


def _points(items: Sequence[Any]) -> Iterator[tuple[datetime, float]]:
    for item in items:
        value = optional_number(PROVIDER, json_field(PROVIDER, item, "carbonIntensity"))
        if value is not None:
            yield parse_time(PROVIDER, json_field(PROVIDER, item, "datetime")), value
