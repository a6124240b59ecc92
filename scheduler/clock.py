"""Clocks: the only place the service reads the time. The planning core never does."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime


class SystemClock:
    """Wall-clock UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def from_wall(self, wall: datetime) -> datetime:
        return wall


@dataclass(frozen=True, slots=True)
class ScaledClock:
    """Scheduler time that runs ``speed`` times faster than the wall clock from ``anchor_wall``.

    Used by the demo and simulations so a day of grid passes in minutes; ``from_wall`` maps a
    worker's wall-clock timestamps into scheduler time.
    """

    anchor_wall: datetime
    anchor: datetime
    speed: float

    def now(self) -> datetime:
        return self.from_wall(datetime.now(UTC))

    def from_wall(self, wall: datetime) -> datetime:
        return self.anchor + (wall - self.anchor_wall) * self.speed
