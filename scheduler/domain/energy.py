"""Energy reports sent by workers, and the units that convert them."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

J_PER_KWH = 3_600_000.0


class MeterMethod(enum.StrEnum):
    NVML_COUNTER = "nvml-counter"  # nvmlDeviceGetTotalEnergyConsumption (Volta+)
    NVML_POWER = "nvml-power"  # integrated nvmlDeviceGetPowerUsage samples
    RAPL = "rapl"  # /sys/class/powercap energy_uj counters
    ESTIMATE = "estimate"  # configured power x time: flagged, not measured


@dataclass(frozen=True, slots=True, kw_only=True)
class EnergyReport:
    """Energy one device used in ``[interval_start, interval_end)``.

    Idempotent by ``(job_id, attempt, device, interval_start)``: a retried POST is not counted
    twice.
    """

    job_id: str
    attempt: int
    node: str
    device: str  # "gpu:0", "cpu:package-0", "estimate:gpu", ...
    interval_start: datetime
    interval_end: datetime
    energy_j: float
    method: MeterMethod

    @property
    def estimated(self) -> bool:
        return self.method is MeterMethod.ESTIMATE

    @property
    def energy_kwh(self) -> float:
        return self.energy_j / J_PER_KWH
