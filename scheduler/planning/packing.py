"""Consolidation: deployments that ask for a fraction of a GPU share GPUs, per region.

Bin packing by first-fit decreasing (FFD): in each region, deployments in decreasing order of
their share each take the first GPU with room, opening a new GPU only when none has, and never
more GPUs than the region has. Shares are counted in Ray's resource granularity (1/10,000 of a
GPU) as integers, so four 0.25 shares fill a GPU exactly and no float rounding ever overfills
one. A share above 1 must be a whole number of GPUs and takes that many GPUs of its own.

FFD uses at most 11/9 x OPT + 6/9 GPUs (Dósa, 2007) and exactly the optimum when the shares
divide one another (1/2, 1/4, 1/8 ...: Coffman, Garey and Johnson), which is what tenants ask for.
Without packing every deployment takes whole GPUs (``ceil(share)``, at least one). The GPUs
saved draw no idle power: ``idle_credit`` turns them into kWh and grams. Pure.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from scheduler.domain import J_PER_KWH

# Ray counts fractional resources in units of 1/10,000.
SHARE_UNITS = 10_000


@dataclass(frozen=True, slots=True, kw_only=True)
class GpuDemand:
    """A deployment's request: ``gpu_share`` of a GPU (0 < share <= 1, or a whole number)
    in ``region``."""

    job_id: str
    region: str
    gpu_share: float


@dataclass(frozen=True, slots=True, kw_only=True)
class GpuSlot:
    """Where a deployment runs: the region and the GPU indexes (0-based, within the region's
    GPUs powered by this packing) it uses; one index for a fractional share."""

    region: str
    gpus: tuple[int, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Packing:
    """The assignment of every placed deployment, those that did not fit (``unplaced``), the
    share used on each powered GPU per region, and GPUs powered with and without packing."""

    assignment: Mapping[str, GpuSlot]
    unplaced: tuple[str, ...]
    load: Mapping[str, tuple[float, ...]]
    gpus_unpacked: Mapping[str, int]

    @property
    def gpus_packed(self) -> dict[str, int]:
        """GPUs powered per region with packing."""
        return {region: len(used) for region, used in self.load.items()}

    @property
    def total_packed(self) -> int:
        return sum(len(used) for used in self.load.values())

    @property
    def total_unpacked(self) -> int:
        return sum(self.gpus_unpacked.values())

    @property
    def gpus_saved(self) -> int:
        """GPUs that packing leaves unpowered (``total_unpacked - total_packed``)."""
        return self.total_unpacked - self.total_packed


@dataclass(frozen=True, slots=True, kw_only=True)
class IdleCredit:
    """Idle energy saved by GPUs left unpowered, and its emissions when an intensity is given."""

    energy_kwh: float
    emissions_g: float | None


def share_units(gpu_share: float) -> int:
    """A share in units of 1/10,000 GPU. Raises ValueError unless it is in (0, 1] or a whole
    number of GPUs."""
    if not (math.isfinite(gpu_share) and gpu_share > 0):
        raise ValueError(f"gpu_share must be positive and finite, got {gpu_share}")
    units = round(gpu_share * SHARE_UNITS)
    if units > SHARE_UNITS and units % SHARE_UNITS:
        raise ValueError(f"a share above 1 must be a whole number of GPUs, got {gpu_share}")
    return max(units, 1)


def whole_gpus(gpu_share: float) -> int:
    """GPUs a deployment takes without packing: ``ceil(share)``, at least one."""
    return max(1, math.ceil(share_units(gpu_share) / SHARE_UNITS))


def _ffd(units: Sequence[int], capacity: int) -> tuple[list[int | None], list[int]]:
    """First-fit decreasing of ``units`` (each at most one GPU) onto at most ``capacity`` GPUs:
    the GPU of each item (None: no room) and each GPU's used units."""
    order = sorted(range(len(units)), key=lambda i: -units[i])
    where: list[int | None] = [None] * len(units)
    used: list[int] = []
    for i in order:
        gpu = next((g for g, u in enumerate(used) if u + units[i] <= SHARE_UNITS), None)
        if gpu is None and len(used) < capacity:
            used.append(0)
            gpu = len(used) - 1
        if gpu is not None:
            used[gpu] += units[i]
            where[i] = gpu
    return where, used


def gpus_needed(gpu_shares: Sequence[float]) -> int:
    """GPUs a first-fit decreasing packing of ``gpu_shares`` powers, without a capacity limit
    (whole-GPU shares count their GPUs). Raises ValueError for a bad share."""
    units = [share_units(s) for s in gpu_shares]
    whole = sum(u // SHARE_UNITS for u in units if u > SHARE_UNITS)
    _, used = _ffd([u for u in units if u <= SHARE_UNITS], len(units))
    return whole + len(used)


def pack(demands: Sequence[GpuDemand], capacity_gpus: Mapping[str, int]) -> Packing:
    """Pack each region's demands onto its GPUs (see the module docstring).

    Whole multi-GPU demands are placed first, largest first, then the rest by first-fit
    decreasing onto what is left; a demand with no room is ``unplaced``, so no GPU ever holds
    more than one GPU's worth and no region powers more than ``capacity_gpus`` (missing: 0).
    Ties keep the order of ``demands``. Raises ValueError for a bad share or a duplicate id.
    """
    ids = [d.job_id for d in demands]
    if len(set(ids)) != len(ids):
        raise ValueError("duplicate job ids in demands")
    assignment: dict[str, GpuSlot] = {}
    unplaced: list[str] = []
    load: dict[str, tuple[float, ...]] = {}
    unpacked: dict[str, int] = {}
    for region in sorted({d.region for d in demands} | set(capacity_gpus)):
        mine = [d for d in demands if d.region == region]
        units = [share_units(d.gpu_share) for d in mine]
        unpacked[region] = sum(whole_gpus(d.gpu_share) for d in mine)
        capacity = max(capacity_gpus.get(region, 0), 0)
        next_gpu = 0
        big = sorted((i for i, u in enumerate(units) if u > SHARE_UNITS), key=lambda i: -units[i])
        for i in big:
            n = units[i] // SHARE_UNITS
            if next_gpu + n > capacity:
                unplaced.append(mine[i].job_id)
                continue
            assignment[mine[i].job_id] = GpuSlot(
                region=region, gpus=tuple(range(next_gpu, next_gpu + n))
            )
            next_gpu += n
        small = [i for i, u in enumerate(units) if u <= SHARE_UNITS]
        where, used = _ffd([units[i] for i in small], capacity - next_gpu)
        for i, gpu in zip(small, where, strict=True):
            if gpu is None:
                unplaced.append(mine[i].job_id)
            else:
                assignment[mine[i].job_id] = GpuSlot(region=region, gpus=(next_gpu + gpu,))
        load[region] = (1.0,) * next_gpu + tuple(u / SHARE_UNITS for u in used)
    return Packing(
        assignment=assignment,
        unplaced=tuple(unplaced),
        load=load,
        gpus_unpacked=unpacked,
    )


def idle_credit(
    gpus_saved: float,
    idle_power_w: float,
    duration_s: float,
    intensity_g_per_kwh: float | None = None,
    pue: float = 1.0,
) -> IdleCredit:
    """The idle energy (kWh, at the meter: PUE not applied) that ``gpus_saved`` unpowered GPUs
    of ``idle_power_w`` each do not draw over ``duration_s``, and its grams (PUE applied) at
    ``intensity_g_per_kwh`` when given. Raises ValueError for negative inputs."""
    for name, value in (
        ("gpus_saved", gpus_saved),
        ("idle_power_w", idle_power_w),
        ("duration_s", duration_s),
    ):
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"{name} must be finite and non-negative, got {value}")
    if pue < 1.0:
        raise ValueError(f"pue must be at least 1.0, got {pue}")
    energy_kwh = gpus_saved * idle_power_w * duration_s / J_PER_KWH
    grams = None if intensity_g_per_kwh is None else energy_kwh * pue * intensity_g_per_kwh
    return IdleCredit(energy_kwh=energy_kwh, emissions_g=grams)
