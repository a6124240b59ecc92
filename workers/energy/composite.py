"""Several meters read as one."""

from __future__ import annotations

from collections.abc import Sequence

from workers.energy.base import Meter, MeterMethod
from workers.energy.errors import MeterReadError
from workers.jsonlog import get_logger

logger = get_logger(__name__)


class CompositeMeter(Meter):
    """The union of several meters' devices (names must not clash: ValueError).

    A meter whose read fails with MeterReadError keeps its last good readings (its devices
    show no energy until it answers again) and the failure is logged, so one lost GPU never
    stops the runner from reporting the others. Other exceptions propagate.
    """

    def __init__(self, meters: Sequence[Meter]) -> None:
        self._meters = list(meters)
        self._owner: dict[str, Meter] = {}
        for meter in self._meters:
            for device in meter.devices():
                if device in self._owner:
                    raise ValueError(f"device {device!r} is reported by two meters")
                self._owner[device] = meter
        self._last: dict[str, float] = dict.fromkeys(self._owner, 0.0)
        self._failing: set[int] = set()

    @property
    def meters(self) -> list[Meter]:
        return list(self._meters)

    def devices(self) -> list[str]:
        return list(self._owner)

    def method(self, device: str) -> MeterMethod:
        return self._owner[device].method(device)

    def methods(self) -> dict[str, MeterMethod]:
        """Method per device, in :meth:`devices` order."""
        return {device: meter.method(device) for device, meter in self._owner.items()}

    def read(self) -> dict[str, float]:
        for index, meter in enumerate(self._meters):
            try:
                readings = meter.read()
            except MeterReadError as e:
                if index not in self._failing:
                    logger.warning(
                        "meter %s stopped reading, holding its last values: %s",
                        type(meter).__name__,
                        e,
                    )
                    self._failing.add(index)
                continue
            if index in self._failing:
                logger.info("meter %s reads again", type(meter).__name__)
                self._failing.discard(index)
            for device, energy_j in readings.items():
                # Readings are cumulative; never let a glitch make them go backwards.
                self._last[device] = max(self._last[device], energy_j)
        return dict(self._last)

    def close(self) -> None:
        for meter in self._meters:
            try:
                meter.close()
            except Exception:  # a shell-like boundary: closing must reach every meter
                logger.exception("closing %s failed", type(meter).__name__)
