"""NVIDIA GPUs through NVML (``pynvml``, from the ``nvidia-ml-py`` package).

Per device, the best NVML offers: the total-energy counter
(``nvmlDeviceGetTotalEnergyConsumption``, millijoules since the driver loaded, Volta and newer)
or, where that answers NVML_ERROR_NOT_SUPPORTED, power samples (``nvmlDeviceGetPowerUsage``,
milliwatts) integrated with the trapezoid rule by a background thread and at every read.

NVML enumerates every GPU on the node whatever ``CUDA_VISIBLE_DEVICES`` says, so the meter
resolves that variable itself: integer entries are NVML indices (what ``nvidia-smi`` shows; the
same as CUDA's with ``CUDA_DEVICE_ORDER=PCI_BUS_ID``, as Ray sets it), ``GPU-``/``MIG-`` entries
are UUIDs or unique UUID prefixes, and, as CUDA does, the list ends at the first invalid entry.
"""

from __future__ import annotations

import enum
import importlib
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from workers.energy.base import Meter, MeterMethod
from workers.energy.errors import (
    MeterError,
    MeterNotSupported,
    MeterReadError,
    MeterUnavailable,
)
from workers.jsonlog import get_logger

logger = get_logger(__name__)

MJ_PER_J = 1000.0
MW_PER_W = 1000.0
DEFAULT_SAMPLE_INTERVAL_S = 0.1


class _FromEnv(enum.Enum):
    TOKEN = 0


FROM_ENV = _FromEnv.TOKEN
"""Default of ``visible_devices``: read ``CUDA_VISIBLE_DEVICES`` from the environment."""


def parse_visible_devices(value: str | None) -> list[str] | None:
    """Entries of a ``CUDA_VISIBLE_DEVICES`` value: None when unset (every GPU is visible),
    ``[]`` when empty, else the entries up to (not including) the first invalid one."""
    if value is None:
        return None
    entries: list[str] = []
    for raw in value.split(","):
        entry = raw.strip()
        if not (entry.isdigit() or entry.startswith(("GPU-", "MIG-"))):
            break
        entries.append(entry)
    return entries


def load_pynvml() -> ModuleType:
    """Import the real ``pynvml``. Raises MeterUnavailable when nvidia-ml-py is missing."""
    try:
        return importlib.import_module("pynvml")
    except ImportError as e:
        raise MeterUnavailable(None, "pynvml (nvidia-ml-py) is not installed") from e


def nvml_error(
    nvml: ModuleType,
    error: Exception,
    *,
    device: str | None,
    action: str,
    started: bool,
) -> MeterError:
    """Map an NVMLError to a meter error: NOT_SUPPORTED or FUNCTION_NOT_FOUND (an old driver)
    become MeterNotSupported; anything else MeterReadError once the meter has started, else
    MeterUnavailable (no library, no driver, no permission, no such device)."""
    code = getattr(error, "value", None)
    reason = f"{action} failed: {error} (NVML error {code})"
    not_supported = {
        getattr(nvml, "NVML_ERROR_NOT_SUPPORTED", 3),
        getattr(nvml, "NVML_ERROR_FUNCTION_NOT_FOUND", 13),
    }
    if code in not_supported:
        return MeterNotSupported(device, reason)
    if started:
        return MeterReadError(device, reason)
    return MeterUnavailable(device, reason)


@dataclass(slots=True)
class _Gpu:
    name: str
    handle: Any
    method: MeterMethod
    model: str = ""
    last_counter_mj: int = 0
    energy_j: float = 0.0
    last_power_w: float = 0.0
    last_sample_s: float = 0.0


class NvmlMeter(Meter):
    """Energy of the visible NVIDIA GPUs; devices are named ``gpu:<NVML index>``.

    ``nvml`` is the pynvml module (injectable: tests pass a fake with the same API).
    ``use_counter=False`` forces power sampling even where the counter exists (to compare the
    two). ``sample_interval_s`` is the background sampling period for power-sampled devices;
    None samples only when :meth:`read` is called. Raises MeterUnavailable when NVML cannot
    start, no GPU is visible, or a visible GPU supports neither the counter nor power readings.
    """

    def __init__(
        self,
        *,
        nvml: ModuleType | None = None,
        visible_devices: str | _FromEnv | None = FROM_ENV,
        use_counter: bool = True,
        sample_interval_s: float | None = DEFAULT_SAMPLE_INTERVAL_S,
        monotonic_s: Callable[[], float] = time.monotonic,
    ) -> None:
        self._nvml = nvml if nvml is not None else load_pynvml()
        self._monotonic_s = monotonic_s
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._thread_error: MeterError | None = None
        self._closed = False
        if visible_devices is FROM_ENV:
            visible_devices = os.environ.get("CUDA_VISIBLE_DEVICES")
        self._call_init("nvmlInit")
        try:
            self._gpus = self._open_devices(parse_visible_devices(visible_devices), use_counter)
        except MeterError:
            self._shutdown()
            raise
        if sample_interval_s is not None and any(
            g.method is MeterMethod.NVML_POWER for g in self._gpus
        ):
            self._thread = threading.Thread(
                target=self._sample_loop,
                args=(sample_interval_s,),
                name="nvml-power",
                daemon=True,
            )
            self._thread.start()

    # -- Meter ----------------------------------------------------------------------------

    def devices(self) -> list[str]:
        return [g.name for g in self._gpus]

    def method(self, device: str) -> MeterMethod:
        for gpu in self._gpus:
            if gpu.name == device:
                return gpu.method
        raise KeyError(device)

    @property
    def models(self) -> dict[str, str]:
        """The product name of each device (``NVIDIA H100 80GB HBM3``), for logs."""
        return {g.name: g.model for g in self._gpus}

    def read(self) -> dict[str, float]:
        with self._lock:
            if self._thread_error is not None:
                raise self._thread_error
            if not self._closed:
                now_s = self._monotonic_s()
                for gpu in self._gpus:
                    if gpu.method is MeterMethod.NVML_COUNTER:
                        self._read_counter(gpu)
                    else:
                        self._sample_power(gpu, now_s)
            return {g.name: g.energy_j for g in self._gpus}

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._shutdown()

    # -- setup ----------------------------------------------------------------------------

    def _open_devices(self, visible: list[str] | None, use_counter: bool) -> list[_Gpu]:
        count = int(self._call_init("nvmlDeviceGetCount"))
        if visible is None:
            visible = [str(i) for i in range(count)]
        gpus: list[_Gpu] = []
        for entry in visible:
            found = self._resolve(entry, count)
            if found is None:
                break  # CUDA ignores an invalid entry and everything after it
            name, handle = found
            if all(g.name != name for g in gpus):
                gpus.append(self._probe_device(name, handle, use_counter))
        if not gpus:
            raise MeterUnavailable(None, f"no visible GPU (NVML sees {count}, visible={visible})")
        return gpus

    def _resolve(self, entry: str, count: int) -> tuple[str, Any] | None:
        if entry.isdigit():
            index = int(entry)
            if index >= count:
                return None
            return f"gpu:{index}", self._call_init("nvmlDeviceGetHandleByIndex", index)
        for index in range(count):
            handle = self._call_init("nvmlDeviceGetHandleByIndex", index)
            if str(self._call_init("nvmlDeviceGetUUID", handle)).startswith(entry):
                return f"gpu:{index}", handle
        if entry.startswith("MIG-"):
            return f"gpu:{entry}", self._call_init("nvmlDeviceGetHandleByUUID", entry)
        return None

    def _probe_device(self, name: str, handle: Any, use_counter: bool) -> _Gpu:
        try:
            model = str(self._call_init("nvmlDeviceGetName", handle, device=name))
        except MeterError:
            model = "unknown"
        if use_counter:
            try:
                counter_mj = int(
                    self._call_init("nvmlDeviceGetTotalEnergyConsumption", handle, device=name)
                )
                return _Gpu(
                    name=name,
                    handle=handle,
                    method=MeterMethod.NVML_COUNTER,
                    model=model,
                    last_counter_mj=counter_mj,
                )
            except MeterUnavailable as e:
                logger.info("%s: no energy counter (%s); sampling power instead", name, e.reason)
        try:
            power_mw = int(self._call_init("nvmlDeviceGetPowerUsage", handle, device=name))
        except MeterUnavailable as e:
            raise MeterUnavailable(name, f"neither energy counter nor power: {e.reason}") from e
        return _Gpu(
            name=name,
            handle=handle,
            method=MeterMethod.NVML_POWER,
            model=model,
            last_power_w=power_mw / MW_PER_W,
            last_sample_s=self._monotonic_s(),
        )

    # -- reading --------------------------------------------------------------------------

    def _read_counter(self, gpu: _Gpu) -> None:
        counter_mj = int(self._call_read("nvmlDeviceGetTotalEnergyConsumption", gpu))
        # The counter restarts only when the driver reloads; then count from zero again.
        delta_mj = counter_mj - gpu.last_counter_mj if counter_mj >= gpu.last_counter_mj else 0
        gpu.energy_j += delta_mj / MJ_PER_J
        gpu.last_counter_mj = counter_mj

    def _sample_power(self, gpu: _Gpu, now_s: float) -> None:
        power_w = int(self._call_read("nvmlDeviceGetPowerUsage", gpu)) / MW_PER_W
        elapsed_s = max(0.0, now_s - gpu.last_sample_s)
        gpu.energy_j += (gpu.last_power_w + power_w) / 2.0 * elapsed_s
        gpu.last_power_w = power_w
        gpu.last_sample_s = now_s

    def _sample_loop(self, interval_s: float) -> None:
        while not self._stop.wait(interval_s):
            with self._lock:
                if self._closed or self._thread_error is not None:
                    return
                now_s = self._monotonic_s()
                try:
                    for gpu in self._gpus:
                        if gpu.method is MeterMethod.NVML_POWER:
                            self._sample_power(gpu, now_s)
                except MeterError as e:
                    # Surfaced on the next read(), where the caller decides what to do.
                    self._thread_error = e
                    return

    # -- NVML calls -----------------------------------------------------------------------

    def _call_init(self, fn: str, *args: Any, device: str | None = None) -> Any:
        try:
            return getattr(self._nvml, fn)(*args)
        except self._nvml.NVMLError as e:
            raise nvml_error(self._nvml, e, device=device, action=fn, started=False) from e

    def _call_read(self, fn: str, gpu: _Gpu) -> Any:
        try:
            return getattr(self._nvml, fn)(gpu.handle)
        except self._nvml.NVMLError as e:
            raise nvml_error(self._nvml, e, device=gpu.name, action=fn, started=True) from e

    def _shutdown(self) -> None:
        try:
            self._nvml.nvmlShutdown()
        except self._nvml.NVMLError as e:
            logger.debug("nvmlShutdown failed: %s", e)
