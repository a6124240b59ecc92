"""Energy estimated from configured power x elapsed time, for hardware nobody can measure."""

from __future__ import annotations

import time
from collections.abc import Callable

from workers.energy.base import Meter, MeterMethod

ESTIMATE_GPU = "estimate:gpu"
ESTIMATE_CPU = "estimate:cpu"
ESTIMATE_BASE = "estimate:base"


class EstimateMeter(Meter):
    """``power_w x elapsed_s`` per device class, flagged :attr:`MeterMethod.ESTIMATE`.

    Devices: ``estimate:gpu`` (``gpus x gpu_w``), ``estimate:cpu`` (``cpus x cpu_core_w``) and
    ``estimate:base`` (``base_w``: memory, disks, fans, the node's share not otherwise counted);
    a device whose power would be zero is left out. Time comes from ``monotonic_s`` (seconds),
    injectable for tests. Raises ValueError for a negative count or power.
    """

    def __init__(
        self,
        gpus: float,
        cpus: float,
        gpu_w: float,
        cpu_core_w: float,
        base_w: float,
        *,
        monotonic_s: Callable[[], float] = time.monotonic,
    ) -> None:
        for name, value in {
            "gpus": gpus,
            "cpus": cpus,
            "gpu_w": gpu_w,
            "cpu_core_w": cpu_core_w,
            "base_w": base_w,
        }.items():
            if value < 0:
                raise ValueError(f"{name} must be >= 0, got {value}")
        candidates = {
            ESTIMATE_GPU: gpus * gpu_w,
            ESTIMATE_CPU: cpus * cpu_core_w,
            ESTIMATE_BASE: base_w,
        }
        self._power_w = {device: p for device, p in candidates.items() if p > 0}
        self._monotonic_s = monotonic_s
        self._start_s = monotonic_s()

    @property
    def power_w(self) -> dict[str, float]:
        """The constant power assumed per device, in watts."""
        return dict(self._power_w)

    def devices(self) -> list[str]:
        return list(self._power_w)

    def method(self, device: str) -> MeterMethod:
        if device not in self._power_w:
            raise KeyError(device)
        return MeterMethod.ESTIMATE

    def read(self) -> dict[str, float]:
        elapsed_s = max(0.0, self._monotonic_s() - self._start_s)
        return {device: p * elapsed_s for device, p in self._power_w.items()}
