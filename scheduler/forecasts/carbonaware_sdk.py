"""GSF Carbon Aware SDK WebAPI, for teams that already run one in front of their data source.

Zones are the WebAPI's ``location`` names (cloud regions such as ``westus``). No auth. Values
are g/kWh already. ``/emissions/forecasts/current`` gives forecasts (``duration`` in minutes);
``/emissions/bylocations`` gives past data (``duration`` as a .NET TimeSpan ``[d.]hh:mm:ss``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from scheduler.domain import Forecast, ProviderError, SeriesKind
from scheduler.forecasts.http import HttpSettings, JsonHttpClient
from scheduler.forecasts.validation import (
    DEFAULT_MIN_HORIZON_S,
    as_number,
    build_series,
    clamp_issued_at,
    json_array,
    json_field,
    parse_time,
    trim_actuals,
    trim_forecast,
)

PROVIDER = "carbonaware_sdk"
DEFAULT_BASE_URL = "http://localhost:5073"
DEFAULT_HORIZON_S = 48 * 3600.0
S_PER_MINUTE = 60.0
_TIMESPAN = re.compile(r"^(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2})(?:\.\d+)?$")


def timespan_s(value: object) -> float:
    """Seconds in a .NET TimeSpan string (``"00:05:00"``, ``"1.00:00:00"``).

    Raises ProviderError for anything else.
    """
    match = _TIMESPAN.match(value) if isinstance(value, str) else None
    if match is None:
        raise ProviderError(PROVIDER, f"unparseable duration {value!r}")
    days, hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    return float(((days * 24 + hours) * 60 + minutes) * 60 + seconds)


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat()


class CarbonAwareSdkClient:
    """Raw WebAPI endpoints. Returns decoded JSON."""

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        *,
        http_settings: HttpSettings | None = None,
    ) -> None:
        self.http = JsonHttpClient(PROVIDER, base_url, settings=http_settings)

    def forecasts_current(self, location: str) -> Any:
        return self.http.get_json("emissions/forecasts/current", params={"location": location})

    def by_locations(self, location: str, start: datetime, end: datetime) -> Any:
        return self.http.get_json(
            "emissions/bylocations",
            params={"location": location, "time": _iso(start), "toTime": _iso(end)},
        )


class CarbonAwareSdkProvider:
    """The Carbon Aware SDK WebAPI as a ForecastProvider. Raises ProviderError for every fault."""

    name = PROVIDER

    def __init__(
        self,
        client: CarbonAwareSdkClient,
        *,
        horizon_s: float = DEFAULT_HORIZON_S,
        min_horizon_s: float = DEFAULT_MIN_HORIZON_S,
    ) -> None:
        self.client = client
        self.horizon_s = horizon_s
        self.min_horizon_s = min_horizon_s

    def forecast(self, zone: str, now: datetime) -> Forecast:
        dto = _forecast_for(json_array(PROVIDER, self.client.forecasts_current(zone)), zone)
        data = json_array(PROVIDER, dto, "forecastData")
        durations_s = {
            as_number(PROVIDER, json_field(PROVIDER, d, "duration")) * S_PER_MINUTE for d in data
        }
        generated = dto.get("generatedAt")
        series = build_series(
            provider=PROVIDER,
            zone=zone,
            kind=SeriesKind.FORECAST,
            issued_at=clamp_issued_at(parse_time(PROVIDER, generated) if generated else None, now),
            points=_points(data, "timestamp", "value"),
            resolution_s=durations_s.pop() if len(durations_s) == 1 else None,
        )
        return trim_forecast(series, now, self.horizon_s, self.min_horizon_s)

    def actuals(self, zone: str, start: datetime, end: datetime) -> Forecast:
        body = self.client.by_locations(zone, start, end)
        # The quickstart shows one object where the current code returns an array: take both.
        data: Sequence[Any] = [body] if isinstance(body, Mapping) else json_array(PROVIDER, body)
        durations_s = {timespan_s(json_field(PROVIDER, d, "duration")) for d in data}
        series = build_series(
            provider=PROVIDER,
            zone=zone,
            kind=SeriesKind.ACTUAL,
            issued_at=end,
            points=_points(data, "time", "rating"),
            resolution_s=durations_s.pop() if len(durations_s) == 1 else None,
        )
        return trim_actuals(series, start, end)


def _forecast_for(dtos: Sequence[Any], zone: str) -> Mapping[str, Any]:
    """The forecast DTO for the requested location (the WebAPI answers one per location)."""
    for dto in dtos:
        if json_field(PROVIDER, dto, "location") == zone:
            return dto  # type: ignore[no-any-return]
    raise ProviderError(PROVIDER, f"no forecast for location {zone!r} in the response")


def _points(data: Sequence[Any], time_key: str, value_key: str) -> Iterator[tuple[datetime, float]]:
    for item in data:
        value = as_number(PROVIDER, json_field(PROVIDER, item, value_key))
        yield parse_time(PROVIDER, json_field(PROVIDER, item, time_key)), value
