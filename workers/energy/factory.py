"""Pick the meters that exist on this node: NVML for GPUs, RAPL for CPUs, estimates for the
rest. The probe that finds what exists is cached per process (starting NVML costs time)."""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Literal, NamedTuple

from workers.energy.base import Meter
from workers.energy.composite import CompositeMeter
from workers.energy.errors import MeterUnavailable
from workers.energy.estimate import EstimateMeter
from workers.energy.rapl import POWERCAP_ROOT, RaplMeter
from workers.jsonlog import get_logger

if TYPE_CHECKING:
    from workers.energy.nvml import NvmlMeter

logger = get_logger(__name__)

MeterMode = Literal["auto", "estimate"]

NOT_PROBED = "not probed: the job holds no GPU"
DEFAULT_GPU_W = 300.0
DEFAULT_CPU_CORE_W = 12.0
DEFAULT_BASE_W = 20.0


class PowerSpec(NamedTuple):
    """What the job holds and the power assumed where nothing measures it.

    ``gpus``/``cpus`` None means unknown (a local run): GPUs are then whatever NVML sees
    (none estimated without NVML) and CPUs count as one core for the estimate.
    """

    gpus: float | None = None  # a deployment may hold a share of one GPU
    cpus: float | None = None
    gpu_w: float = DEFAULT_GPU_W
    cpu_core_w: float = DEFAULT_CPU_CORE_W
    base_w: float = DEFAULT_BASE_W


class HardwareProbe(NamedTuple):
    """What this node can measure; ``*_error`` says why not when it cannot."""

    nvml_devices: tuple[str, ...] = ()
    nvml_error: str | None = None
    rapl_devices: tuple[str, ...] = ()
    rapl_error: str | None = None


@functools.lru_cache(maxsize=8)
def probe_hardware(
    nvml: ModuleType | None = None,
    rapl_root: Path = POWERCAP_ROOT,
    visible_devices: str | None = None,
    gpus: bool = True,
) -> HardwareProbe:
    """Open and close each real meter once and remember what worked (cached per arguments;
    ``probe_hardware.cache_clear()`` forgets). Never raises for missing hardware. ``gpus``
    False: NVML is not probed (a job holding no GPU: loading it costs every such job ~10 ms
    of its start)."""
    nvml_devices: tuple[str, ...] = ()
    nvml_error = rapl_error = None
    rapl_devices: tuple[str, ...] = ()
    if gpus:
        from workers.energy.nvml import NvmlMeter, load_pynvml

        try:
            module = nvml if nvml is not None else load_pynvml()
            with NvmlMeter(
                nvml=module, visible_devices=visible_devices, sample_interval_s=None
            ) as gpu_meter:
                nvml_devices = tuple(gpu_meter.devices())
        except MeterUnavailable as e:
            nvml_error = str(e)
    else:
        nvml_error = NOT_PROBED
    try:
        with RaplMeter(root=rapl_root) as cpu_meter:
            rapl_devices = tuple(cpu_meter.devices())
    except MeterUnavailable as e:
        rapl_error = str(e)
    return HardwareProbe(
        nvml_devices=nvml_devices,
        nvml_error=nvml_error,
        rapl_devices=rapl_devices,
        rapl_error=rapl_error,
    )


def build_meter(
    spec: PowerSpec,
    *,
    mode: MeterMode = "auto",
    nvml: ModuleType | None = None,
    rapl_root: Path = POWERCAP_ROOT,
    env: Mapping[str, str] | None = None,
) -> CompositeMeter:
    """The best meter for ``spec`` on this node; never raises for missing hardware.

    ``auto``: NVML for the visible GPUs (``CUDA_VISIBLE_DEVICES`` from ``env``, default
    ``os.environ``) unless ``spec.gpus == 0``; RAPL for the CPU packages, scaled by the job's
    share of the node's cores when ``spec.cpus`` is known; an estimate for whichever is
    missing, plus ``estimate:base`` for the rest of the node. ``estimate``: estimates only.
    """
    env = os.environ if env is None else env
    gpus = spec.gpus
    cpus = spec.cpus if spec.cpus is not None else 1.0
    meters: list[Meter] = []
    measured_gpus = measured_cpus = False
    if mode == "auto":
        visible = env.get("CUDA_VISIBLE_DEVICES")
        found = probe_hardware(nvml, Path(rapl_root), visible, gpus != 0)
        if gpus != 0 and found.nvml_devices:
            gpu_meter = _try_nvml(nvml, visible)
            if gpu_meter is not None:
                meters.append(gpu_meter)
                measured_gpus = True
        if found.rapl_devices:
            cpu_meter = _try_rapl(Path(rapl_root), _cpu_share(spec.cpus))
            if cpu_meter is not None:
                meters.append(cpu_meter)
                measured_cpus = True
        logger.info(
            "meters probed: nvml=%s rapl=%s",
            found.nvml_devices or found.nvml_error,
            found.rapl_devices or found.rapl_error,
        )
    meters.append(
        EstimateMeter(
            gpus=0 if measured_gpus or gpus is None else gpus,
            cpus=0.0 if measured_cpus else cpus,
            gpu_w=spec.gpu_w,
            cpu_core_w=spec.cpu_core_w,
            base_w=spec.base_w,
        )
    )
    return CompositeMeter(meters)


def _try_nvml(nvml: ModuleType | None, visible: str | None) -> NvmlMeter | None:
    from workers.energy.nvml import NvmlMeter

    try:
        return NvmlMeter(nvml=nvml, visible_devices=visible)
    except MeterUnavailable as e:
        logger.warning("NVML probed fine but failed to open, estimating GPUs: %s", e)
        return None


def _try_rapl(root: Path, share: float) -> RaplMeter | None:
    try:
        return RaplMeter(root=root, share=share)
    except MeterUnavailable as e:
        logger.warning("RAPL probed fine but failed to open, estimating CPUs: %s", e)
        return None


def _cpu_share(cpus: float | None) -> float:
    online = os.cpu_count() or 1
    if cpus is None or cpus <= 0:
        return 1.0
    return min(1.0, cpus / online)
