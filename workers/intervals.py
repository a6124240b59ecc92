"""Cutting cumulative meter readings into contiguous energy-report intervals."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from workers.energy.base import Meter


class IntervalReport(NamedTuple):
    """Energy one device used in ``[interval_start, interval_end)``; the wire record of
    ``POST /v1/jobs/{id}/energy``. Immutable, so a resend carries identical intervals."""

    attempt: int
    node: str
    device: str
    interval_start: datetime
    interval_end: datetime
    energy_j: float
    method: str

    def to_json(self) -> dict[str, Any]:
        return {
            "attempt": self.attempt,
            "node": self.node,
            "device": self.device,
            "interval_start": self.interval_start.isoformat(),
            "interval_end": self.interval_end.isoformat(),
            "energy_j": self.energy_j,
            "method": self.method,
        }


class IntervalCutter:
    """Turns a meter's cumulative readings into per-interval reports.

    Wall-clock boundaries are derived from one UTC anchor plus the monotonic clock, so they are
    strictly increasing and contiguous (each interval starts where the last ended) even if the
    system clock steps. ``monotonic_s`` must be the clock the meter uses. Raises what
    ``meter.read()`` raises for the baseline reading.
    """

    def __init__(
        self,
        meter: Meter,
        *,
        attempt: int,
        node: str,
        monotonic_s: Callable[[], float],
        wall_anchor: datetime | None = None,
    ) -> None:
        self._meter = meter
        self._attempt = attempt
        self._node = node
        self._monotonic_s = monotonic_s
        self._methods = {d: str(meter.method(d)) for d in meter.devices()}
        # Energy the meter counted before the first interval opened belongs to no interval.
        baseline_j = meter.read()
        self._last_j = {d: baseline_j.get(d, 0.0) for d in self._methods}
        self._mono_anchor_s = monotonic_s()
        self._wall_anchor = wall_anchor or datetime.now(UTC)
        self._last_cut = self._wall_anchor
        self._totals_j: dict[str, float] = dict.fromkeys(self._methods, 0.0)

    @property
    def started_at(self) -> datetime:
        return self._wall_anchor

    @property
    def last_cut(self) -> datetime:
        return self._last_cut

    @property
    def totals_j(self) -> dict[str, float]:
        """Energy per device over every interval cut so far, in joules."""
        return dict(self._totals_j)

    @property
    def methods(self) -> dict[str, str]:
        return dict(self._methods)

    def now(self) -> datetime:
        """The anchored wall clock: UTC start + monotonic seconds elapsed."""
        return self._wall_anchor + timedelta(seconds=self._monotonic_s() - self._mono_anchor_s)

    def cut(self, readings_j: Mapping[str, float] | None = None) -> list[IntervalReport]:
        """Close the current interval at now: one report per device (zero energy included,
        so every device's intervals stay contiguous). ``readings_j`` defaults to a fresh
        ``meter.read()``. Returns [] when no time has passed since the last cut."""
        readings_j = self._meter.read() if readings_j is None else readings_j
        end = self.now()
        if end <= self._last_cut:
            return []
        reports = []
        for device, method in self._methods.items():
            cumulative_j = readings_j.get(device, self._last_j[device])
            energy_j = max(0.0, cumulative_j - self._last_j[device])
            self._last_j[device] = max(cumulative_j, self._last_j[device])
            self._totals_j[device] += energy_j
            reports.append(
                IntervalReport(
                    attempt=self._attempt,
                    node=self._node,
                    device=device,
                    interval_start=self._last_cut,
                    interval_end=end,
                    energy_j=energy_j,
                    method=method,
                )
            )
        self._last_cut = end
        return reports
