"""Energy meters: one interface (:class:`Meter`), vendor classes behind it, and a factory that
picks what this node has. See :mod:`workers.energy.base` for the reading contract."""

from __future__ import annotations

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
from workers.energy.nvml import NvmlMeter, parse_visible_devices
from workers.energy.rapl import POWERCAP_ROOT, RaplMeter

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
