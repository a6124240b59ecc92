"""The one place where vendor numbers become a trusted :class:`Forecast`.

Every provider turns its JSON into ``(valid_at, g_per_kwh)`` pairs and hands them here: values
must be finite numbers within ``MIN/MAX_PLAUSIBLE_G_PER_KWH``, timestamps parseable; the series
comes back sorted, de-duplicated and trimmed to the window asked for. Anything else raises
ProviderError, so garbage never leaves an adapter.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from scheduler.domain import Forecast, IntensityPoint, ProviderError, SeriesKind, Signal
from scheduler.domain.forecasts import MAX_PLAUSIBLE_G_PER_KWH, MIN_PLAUSIBLE_G_PER_KWH

# A provider whose forecast reaches less than this far past ``now`` is treated as failing: a few
# points cannot price a job, and the planner's fallbacks (last good forecast, actuals) do better.
DEFAULT_MIN_HORIZON_S = 6 * 3600.0
DEFAULT_RESOLUTION_S = 3600


def parse_time(provider: str, value: object) -> datetime:
    """An ISO-8601 timestamp from vendor JSON as aware UTC (naive means UTC).

    Raises ProviderError when ``value`` is not a parseable timestamp string.
    """
    if not isinstance(value, str):
        raise ProviderError(provider, f"expected a timestamp string, got {value!r}")
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError as error:
        raise ProviderError(provider, f"unparseable timestamp {value!r}") from error
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def as_number(provider: str, value: object) -> float:
    """A JSON number as float. Raises ProviderError for strings, booleans, null, NaN and inf."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ProviderError(provider, f"expected a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise ProviderError(provider, f"non-finite value {value!r}")
    return number


def optional_number(provider: str, value: object) -> float | None:
    """Like :func:`as_number`, but JSON null (a slot the provider has no value for) is None."""
    return None if value is None else as_number(provider, value)


def json_field(provider: str, obj: object, key: str) -> Any:
    """``obj[key]`` from vendor JSON; raises ProviderError when ``obj`` is not an object or lacks
    ``key`` (a truncated or reshaped response)."""
    if not isinstance(obj, Mapping) or key not in obj:
        raise ProviderError(provider, f"response lacks {key!r}")
    return obj[key]


def json_array(provider: str, obj: object, key: str | None = None) -> Sequence[Any]:
    """``obj[key]`` (or ``obj``) as a JSON array; raises ProviderError otherwise."""
    value = obj if key is None else json_field(provider, obj, key)
    if not isinstance(value, list):
        raise ProviderError(provider, f"expected an array for {key or 'the body'!r}")
    return value


def build_series(
    *,
    provider: str,
    zone: str,
    kind: SeriesKind,
    issued_at: datetime,
    points: Iterable[tuple[datetime, float]],
    resolution_s: float | None = None,
    signal: Signal = Signal.AVERAGE,
) -> Forecast:
    """A validated series from ``(valid_at, g_per_kwh)`` pairs in any order.

    Duplicated ``valid_at`` keep the last value given. ``resolution_s`` is the provider's
    stated step; when None it is the smallest gap between points (one hour for a single point).
    Raises ProviderError for an empty series or any value outside the plausible range.
    """
    by_time: dict[datetime, float] = {}
    for valid_at, g_per_kwh in points:
        if not math.isfinite(g_per_kwh) or not (
            MIN_PLAUSIBLE_G_PER_KWH <= g_per_kwh <= MAX_PLAUSIBLE_G_PER_KWH
        ):
            raise ProviderError(
                provider,
                f"implausible intensity {g_per_kwh!r} g/kWh at {valid_at.isoformat()} "
                f"for zone {zone!r} (allowed {MIN_PLAUSIBLE_G_PER_KWH}-{MAX_PLAUSIBLE_G_PER_KWH})",
            )
        by_time[valid_at.astimezone(UTC)] = g_per_kwh
    if not by_time:
        raise ProviderError(provider, f"no data points for zone {zone!r}")
    times = sorted(by_time)
    step_s = _resolution_s(provider, times, resolution_s)
    return Forecast(
        zone=zone,
        provider=provider,
        kind=kind,
        issued_at=issued_at.astimezone(UTC),
        resolution_s=step_s,
        signal=signal,
        points=tuple(IntensityPoint(valid_at=t, g_per_kwh=by_time[t]) for t in times),
    )


def _resolution_s(provider: str, times: Sequence[datetime], stated_s: float | None) -> int:
    if stated_s is not None:
        if not math.isfinite(stated_s) or stated_s <= 0:
            raise ProviderError(provider, f"invalid data period {stated_s!r} s")
        return round(stated_s)
    gaps_s = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
    return round(min(gaps_s)) if gaps_s else DEFAULT_RESOLUTION_S


def trim_forecast(
    series: Forecast,
    now: datetime,
    horizon_s: float,
    min_horizon_s: float = DEFAULT_MIN_HORIZON_S,
) -> Forecast:
    """Keep the points whose slot overlaps ``[now, now + horizon_s)``.

    The slot containing ``now`` is kept so the series prices the present. Raises ProviderError
    when what is left reaches less than ``min(min_horizon_s, horizon_s)`` past ``now`` (a
    forecast shorter than asked, or one that has already run out).
    """
    step = timedelta(seconds=series.resolution_s)
    until = now + timedelta(seconds=horizon_s)
    kept = tuple(p for p in series.points if p.valid_at + step > now and p.valid_at < until)
    reach_s = (kept[-1].valid_at + step - now).total_seconds() if kept else 0.0
    needed_s = min(min_horizon_s, horizon_s)
    if reach_s < needed_s:
        raise ProviderError(
            series.provider,
            f"forecast for zone {series.zone!r} reaches {reach_s / 3600:.2f} h "
            f"past {now.isoformat()}, need at least {needed_s / 3600:.2f} h",
        )
    return replace(series, points=kept)


def trim_actuals(series: Forecast, start: datetime, end: datetime) -> Forecast:
    """Keep the points whose slot overlaps ``[start, end)`` (so the slot containing ``start``
    prices a run that began mid-slot); raises ProviderError when none do."""
    step = timedelta(seconds=series.resolution_s)
    kept = tuple(p for p in series.points if p.valid_at + step > start and p.valid_at < end)
    if not kept:
        raise ProviderError(
            series.provider,
            f"no actuals for zone {series.zone!r} in [{start.isoformat()}, {end.isoformat()})",
        )
    return replace(series, points=kept)


def clamp_issued_at(issued_at: datetime | None, now: datetime) -> datetime:
    """A provider's issue time, but never later than ``now``: a provider clock running ahead
    must not hide the forecast from "latest as of now" queries."""
    if issued_at is None or issued_at > now:
        return now
    return issued_at
