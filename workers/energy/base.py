"""The meter interface every energy source implements.

Contract (Zeus-style, one interface and vendor classes behind it): a meter is created, then
:meth:`Meter.read` is called any number of times. Each call returns, for every device the meter
owns, the **cumulative energy in joules since the meter was created**. Interval energy is the
difference of two reads; the caller (the runner) cuts intervals. Readings never decrease.

Counters that wrap (RAPL) are unwrapped inside the meter, so callers must poll often enough for
the meter to see each wrap (the runner polls every second; RAPL wraps after minutes).
"""

from __future__ import annotations

import abc
import enum
from types import TracebackType
from typing import Self


class MeterMethod(enum.StrEnum):
    """How a device's energy was obtained; the same strings as
    ``scheduler.domain.energy.MeterMethod`` (a test keeps them equal)."""

    NVML_COUNTER = "nvml-counter"  # nvmlDeviceGetTotalEnergyConsumption (Volta+)
    NVML_POWER = "nvml-power"  # integrated nvmlDeviceGetPowerUsage samples
    RAPL = "rapl"  # /sys/class/powercap energy_uj counters
    ESTIMATE = "estimate"  # configured power x time: flagged, not measured


class Meter(abc.ABC):
    """Cumulative energy per device since creation. Usable as a context manager."""

    @abc.abstractmethod
    def devices(self) -> list[str]:
        """Device names this meter reports, e.g. ``gpu:0``, ``cpu:package-0``,
        ``estimate:gpu``. Fixed for the meter's lifetime."""

    @abc.abstractmethod
    def method(self, device: str) -> MeterMethod:
        """How ``device`` is measured. Raises KeyError for a device this meter does not own."""

    @abc.abstractmethod
    def read(self) -> dict[str, float]:
        """Cumulative energy in joules per device since the meter was created.

        Raises MeterReadError when the hardware stops answering.
        """

    def close(self) -> None:  # noqa: B027 - most meters hold nothing to release
        """Release hardware handles and stop background threads. Idempotent."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
