"""Software Carbon Intensity (Green Software Foundation SCI, ISO/IEC 21031:2024) for one job.

    SCI = (O + M) per R,   O = E x I

- **E** is the energy the job drew, measured by the worker's meters (or estimated, flagged), in
  kWh, multiplied by the PUE of the region it ran in, so data-centre overhead is counted.
- **I** is the location-based grid intensity (GHG Protocol Scope 2, location-based method) at
  the provider's native resolution over each energy interval; ``O = E x I`` is what
  ``scheduler.reports.emissions`` integrates and the savings report calls ``emissions_g``.
- **M** is the share of the hardware's embodied emissions the job used: SCI's
  ``TE x (TiR / EL) x (RR / ToR)``, with TE / EL expressed per device-hour
  (:class:`EmbodiedFactors`) and RR / ToR the job's share of the devices (its GPUs and cores).
- **R** is the functional unit: 1,000 training steps for training jobs, 1,000 requests for
  deployments, as the workers report them (``workers.units``, ``POST /v1/jobs/{id}/progress``).
  Without a count, SCI per unit is None (the totals still stand). A group of jobs has SCI per
  R only where every job in it reported a count and all count the same unit
  (:func:`shared_units`): steps and requests do not add up, and a group's emissions over the
  units of only some of its jobs would flatter it.

Default embodied factors, and where they come from: Luccioni, Viguier and Ligozat, "Estimating
the Carbon Footprint of BLOOM, a 176B Parameter Language Model" (JMLR 24, 2023; arXiv:2211.02001),
section 4.1: 150 kgCO2e per NVIDIA A100 GPU and 2,500 kgCO2e per server node without its GPUs,
a 6-year lifetime at 85 % use. Spread over a node's 64 cores, that is the per-core figure.
:class:`EmbodiedFactors` takes other figures for other hardware: the service config sets them
for all regions (``[embodied]``) and per region (``embodied_gpu_g_per_hour``,
``embodied_cpu_core_g_per_hour`` in a ``[[regions]]`` entry), and each job is charged its
region's.

Pure: no I/O, no clock.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

HOURS_PER_YEAR = 8760.0
LIFETIME_YEARS = 6.0
UTILISATION = 0.85
GPU_EMBODIED_G = 150_000.0
NODE_EMBODIED_G = 2_500_000.0
NODE_CORES = 64
_IN_USE_HOURS = LIFETIME_YEARS * HOURS_PER_YEAR * UTILISATION
# ≈ 3.36 gCO2e per GPU-hour and ≈ 0.87 gCO2e per core-hour.
GPU_EMBODIED_G_PER_HOUR = GPU_EMBODIED_G / _IN_USE_HOURS
CPU_CORE_EMBODIED_G_PER_HOUR = NODE_EMBODIED_G / NODE_CORES / _IN_USE_HOURS
UNITS_PER_R = 1000.0
FUNCTIONAL_UNITS = {"training": "1,000 training steps", "deployment": "1,000 requests"}


@dataclass(frozen=True, slots=True, kw_only=True)
class EmbodiedFactors:
    """Embodied emissions per device-hour of use, gCO2e. Both must be finite and >= 0."""

    gpu_g_per_hour: float = GPU_EMBODIED_G_PER_HOUR
    cpu_core_g_per_hour: float = CPU_CORE_EMBODIED_G_PER_HOUR

    def __post_init__(self) -> None:
        for name in ("gpu_g_per_hour", "cpu_core_g_per_hour"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be finite and >= 0, got {value!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class SciFigures:
    """One job's SCI terms. ``sci_g_per_r`` is (O + M) per R, None without a unit count."""

    operational_g: float
    embodied_g: float
    functional_unit: str
    units: float | None
    sci_g_per_r: float | None

    @property
    def total_g(self) -> float:
        return self.operational_g + self.embodied_g


def embodied_g(*, gpus: float, cpus: float, run_s: float, factors: EmbodiedFactors) -> float:
    """M for a job that held ``gpus`` GPUs and ``cpus`` cores for ``run_s`` seconds.

    Raises ValueError for negative or non-finite inputs.
    """
    for name, value in (("gpus", gpus), ("cpus", cpus), ("run_s", run_s)):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be finite and >= 0, got {value!r}")
    hours = run_s / 3600.0
    return hours * (gpus * factors.gpu_g_per_hour + cpus * factors.cpu_core_g_per_hour)


def sci(*, operational_g: float, embodied_g: float, kind: str, units: float | None) -> SciFigures:
    """SCI from its terms. ``units`` is the count of the kind's base unit (training steps or
    requests); SCI is per 1,000 of them. A count of 0 or None leaves SCI per unit undefined."""
    per_r = None
    if units is not None and units > 0 and math.isfinite(units):
        per_r = (operational_g + embodied_g) / (units / UNITS_PER_R)
    return SciFigures(
        operational_g=operational_g,
        embodied_g=embodied_g,
        functional_unit=FUNCTIONAL_UNITS.get(kind, "1,000 units"),
        units=units,
        sci_g_per_r=per_r,
    )


def factors_for(
    region: str, default: EmbodiedFactors, by_region: Mapping[str, EmbodiedFactors] | None
) -> EmbodiedFactors:
    """The embodied factors of ``region``: its own where configured, else ``default``."""
    if by_region is None:
        return default
    return by_region.get(region, default)


def shared_units(
    jobs: int, counted_jobs: int, units: float, unit_names: Iterable[str]
) -> tuple[float, str] | tuple[None, None]:
    """A group's functional units ``(total, unit)`` when all ``jobs`` reported a count
    (``counted_jobs``) in one unit; ``(None, None)`` otherwise (no jobs, a job without a
    count, mixed units)."""
    names = set(unit_names)
    if jobs == 0 or counted_jobs != jobs or len(names) != 1:
        return None, None
    return units, names.pop()


@dataclass(frozen=True, slots=True, kw_only=True)
class PerUnit:
    """Figures per functional unit R (1,000 units). ``sci_g_per_r`` = (O + M) per R;
    ``energy_kwh_per_1k_requests`` (metered energy, before PUE) and
    ``emissions_g_per_1k_requests`` (operational, O) only for requests. None where there is
    no positive count."""

    sci_g_per_r: float | None = None
    energy_kwh_per_1k_requests: float | None = None
    emissions_g_per_1k_requests: float | None = None


def per_unit(
    *,
    operational_g: float,
    embodied_g: float,
    energy_kwh: float,
    units: float | None,
    unit: str | None,
) -> PerUnit:
    """The figures per R of a job or a group whose count is ``units`` of ``unit``."""
    if units is None or unit is None or not (units > 0 and math.isfinite(units)):
        return PerUnit()
    r = units / UNITS_PER_R
    sci_g_per_r = (operational_g + embodied_g) / r
    if unit != "requests":
        return PerUnit(sci_g_per_r=sci_g_per_r)
    return PerUnit(
        sci_g_per_r=sci_g_per_r,
        energy_kwh_per_1k_requests=energy_kwh / r,
        emissions_g_per_1k_requests=operational_g / r,
    )
