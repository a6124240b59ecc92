"""Carbon-intensity series: forecasts and actuals, as providers issued them."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta


class SeriesKind(enum.StrEnum):
    FORECAST = "forecast"
    ACTUAL = "actual"


class Signal(enum.StrEnum):
    """Average intensity of consumed electricity, or the marginal emissions rate (WattTime MOER)."""

    AVERAGE = "average"
    MARGINAL = "marginal"


@dataclass(frozen=True, slots=True, kw_only=True)
class IntensityPoint:
    """Intensity valid from ``valid_at`` for the series' resolution, in gCO2e/kWh."""

    valid_at: datetime
    g_per_kwh: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Forecast:
    """A series for one zone issued at ``issued_at``: a forecast, or actuals when ``kind`` says so.

    Points are sorted by ``valid_at`` and step by ``resolution_s`` (gaps allowed); values are
    finite and within the plausible range checked by the provider adapters.
    """

    zone: str
    provider: str
    kind: SeriesKind
    issued_at: datetime
    resolution_s: int
    points: tuple[IntensityPoint, ...]
    signal: Signal = Signal.AVERAGE

    @property
    def start(self) -> datetime | None:
        return self.points[0].valid_at if self.points else None

    @property
    def end(self) -> datetime | None:
        """End of the last point's validity (exclusive)."""
        if not self.points:
            return None
        return self.points[-1].valid_at + timedelta(seconds=self.resolution_s)

    def age_s(self, now: datetime) -> float:
        return (now - self.issued_at).total_seconds()


# Values outside this range are treated as garbage from a provider: the dirtiest real grids
# (coal, lignite) stay under ~1,200 g/kWh average and ~1,500 marginal.
MIN_PLAUSIBLE_G_PER_KWH = 0.0
MAX_PLAUSIBLE_G_PER_KWH = 2000.0
