"""Energy meters: one interface (:class:`Meter`), vendor classes behind it, and a factory that
picks what this node has. See :mod:`workers.energy.base` for the reading contract."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from workers.energy.base import Meter, MeterMethod
from workers.energy.composite import CompositeMeter
from workers.energy.errors import MeterError, MeterNotSupported, MeterReadError, MeterUnavailable
from workers.energy.estimate import EstimateMeter
from workers.energy.factory import (
    HardwareProbe,
    MeterMode,
    PowerSpec,
    build_meter,
    probe_hardware,
)
from workers.energy.rapl import POWERCAP_ROOT, RaplMeter

if TYPE_CHECKING:
    from workers.energy.nvml import NvmlMeter, parse_visible_devices


def __getattr__(name: str) -> Any:
    # NVML's module only when asked for: a job without GPUs never loads it (see factory).
    if name in ("NvmlMeter", "parse_visible_devices"):
        from workers.energy import nvml

        return getattr(nvml, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "POWERCAP_ROOT",
    "CompositeMeter",
    "EstimateMeter",
    "HardwareProbe",
    "Meter",
    "MeterError",
    "MeterMethod",
    "MeterMode",
    "MeterNotSupported",
    "MeterReadError",
    "MeterUnavailable",
    "NvmlMeter",
    "PowerSpec",
    "RaplMeter",
    "build_meter",
    "parse_visible_devices",
    "probe_hardware",
]
