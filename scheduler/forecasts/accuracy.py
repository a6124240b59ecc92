"""Forecast accuracy and staleness: pure functions of stored series (no I/O, no clock).

A forecast point's lead time is ``valid_at - issued_at`` (the slot containing the issue time
counts as lead 0). It is compared with the actual intensity of the actual slot containing its
``valid_at``; points with no actual there are left out.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Sequence
from datetime import datetime

import numpy as np
import numpy.typing as npt

from scheduler.domain import Forecast
from scheduler.planning.snapshot import LeadError

DEFAULT_LEAD_BUCKETS_S: tuple[float, ...] = (
    3600.0,
    3 * 3600.0,
    6 * 3600.0,
    12 * 3600.0,
    24 * 3600.0,
    48 * 3600.0,
    72 * 3600.0,
)


def _actual_lookup(actuals: Forecast) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    starts_s = np.array([p.valid_at.timestamp() for p in actuals.points], dtype=np.float64)
    values = np.array([p.g_per_kwh for p in actuals.points], dtype=np.float64)
    return starts_s, values


def _pairs(
    forecasts: Sequence[Forecast],
    actuals: Forecast,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """``(lead_s, forecast, actual)`` for every forecast point that has an actual."""
    starts_s, values = _actual_lookup(actuals)
    leads, predicted, measured = [], [], []
    for forecast in forecasts:
        if not forecast.points or not len(starts_s):
            continue
        times_s = np.array([p.valid_at.timestamp() for p in forecast.points])
        slot = np.searchsorted(starts_s, times_s, side="right") - 1
        covered = (slot >= 0) & (times_s < starts_s[np.maximum(slot, 0)] + actuals.resolution_s)
        issued_s = forecast.issued_at.timestamp()
        leads.append(np.maximum(0.0, times_s[covered] - issued_s))
        predicted.append(np.array([p.g_per_kwh for p in forecast.points])[covered])
        measured.append(values[slot[covered]])
    if not leads:
        empty = np.empty(0, dtype=np.float64)
        return empty, empty, empty
    return np.concatenate(leads), np.concatenate(predicted), np.concatenate(measured)


def forecast_error_by_lead(
    forecasts: Sequence[Forecast],
    actuals: Forecast,
    lead_buckets_s: Sequence[float] = DEFAULT_LEAD_BUCKETS_S,
) -> list[LeadError]:
    """Mean absolute error (g/kWh) of ``forecasts`` against ``actuals`` per lead-time bucket.

    ``lead_buckets_s`` are ascending upper edges: bucket ``i`` holds leads in
    ``(edge[i-1], edge[i]]`` (the first from 0) and is reported as ``LeadError(lead_s=edge[i])``.
    Leads beyond the last edge and empty buckets are left out. Raises ValueError for edges that
    are not ascending.
    """
    edges = [float(e) for e in lead_buckets_s]
    if any(b <= a for a, b in itertools.pairwise(edges)):
        raise ValueError(f"lead buckets must be strictly ascending, got {edges}")
    lead_s, predicted, measured = _pairs(forecasts, actuals)
    errors = np.abs(predicted - measured)
    bucket = np.array([bisect.bisect_left(edges, lead) for lead in lead_s], dtype=np.int64)
    result = []
    for index, edge in enumerate(edges):
        chosen = errors[bucket == index]
        if len(chosen):
            result.append(LeadError(lead_s=edge, mae_g_per_kwh=float(chosen.mean())))
    return result


def mape_pct(
    forecasts: Sequence[Forecast],
    actuals: Forecast,
    *,
    max_lead_s: float | None = None,
) -> float | None:
    """Mean absolute percentage error (%) of ``forecasts`` against ``actuals``, over points up to
    ``max_lead_s`` ahead (all when None). Actuals of 0 g/kWh are skipped (the ratio is
    undefined). None when nothing can be compared."""
    lead_s, predicted, measured = _pairs(forecasts, actuals)
    keep = measured > 0
    if max_lead_s is not None:
        keep &= lead_s <= max_lead_s
    if not keep.any():
        return None
    return float(np.mean(np.abs(predicted[keep] - measured[keep]) / measured[keep]) * 100.0)


def is_stale(forecast: Forecast, now: datetime, max_age_s: float) -> bool:
    """Whether ``forecast`` should no longer be planned on at ``now``: issued more than
    ``max_age_s`` ago, or with no point left that is still valid at or after ``now``."""
    if forecast.age_s(now) > max_age_s:
        return True
    end = forecast.end
    return end is None or end <= now
