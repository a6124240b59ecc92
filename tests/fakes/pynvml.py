"""A fake ``pynvml`` (nvidia-ml-py) with the real module's API: the same function names and
signatures, the same NVMLError class (``.value`` code, per-code subclasses such as
``NVMLError_NotSupported`` built the same way) and codes, and the same units (energy in mJ,
power in mW). Tests script GPUs with :func:`configure` and pass this module wherever code
takes the ``pynvml`` module; ``test_energy_nvml.py`` checks it against the real one.
"""

from __future__ import annotations

import string
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

NVML_SUCCESS = 0
NVML_ERROR_UNINITIALIZED = 1
NVML_ERROR_INVALID_ARGUMENT = 2
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_NO_PERMISSION = 4
NVML_ERROR_ALREADY_INITIALIZED = 5
NVML_ERROR_NOT_FOUND = 6
NVML_ERROR_INSUFFICIENT_SIZE = 7
NVML_ERROR_INSUFFICIENT_POWER = 8
NVML_ERROR_DRIVER_NOT_LOADED = 9
NVML_ERROR_TIMEOUT = 10
NVML_ERROR_IRQ_ISSUE = 11
NVML_ERROR_LIBRARY_NOT_FOUND = 12
NVML_ERROR_FUNCTION_NOT_FOUND = 13
NVML_ERROR_CORRUPTED_INFOROM = 14
NVML_ERROR_GPU_IS_LOST = 15
NVML_ERROR_RESET_REQUIRED = 16
NVML_ERROR_OPERATING_SYSTEM = 17
NVML_ERROR_LIB_RM_VERSION_MISMATCH = 18
NVML_ERROR_IN_USE = 19
NVML_ERROR_MEMORY = 20
NVML_ERROR_NO_DATA = 21
NVML_ERROR_UNKNOWN = 999

_ERROR_STRINGS = {
    NVML_ERROR_UNINITIALIZED: "Uninitialized",
    NVML_ERROR_INVALID_ARGUMENT: "Invalid Argument",
    NVML_ERROR_NOT_SUPPORTED: "Not Supported",
    NVML_ERROR_NO_PERMISSION: "Insufficient Permissions",
    NVML_ERROR_ALREADY_INITIALIZED: "Already Initialized",
    NVML_ERROR_NOT_FOUND: "Not Found",
    NVML_ERROR_DRIVER_NOT_LOADED: "Driver Not Loaded",
    NVML_ERROR_LIBRARY_NOT_FOUND: "NVML Shared Library Not Found",
    NVML_ERROR_FUNCTION_NOT_FOUND: "Function Not Found",
    NVML_ERROR_GPU_IS_LOST: "GPU is lost",
    NVML_ERROR_UNKNOWN: "Unknown Error",
}


class NVMLError(Exception):
    """Like pynvml's: ``NVMLError(code)`` builds the per-code subclass; ``.value`` is the code."""

    _valClassMapping: dict[int, type[NVMLError]] = {}  # noqa: RUF012 - pynvml's shape
    value: int

    def __new__(cls, value: int) -> NVMLError:
        if cls is NVMLError:
            cls = NVMLError._valClassMapping.get(value, cls)
        obj = Exception.__new__(cls)
        obj.value = value
        return obj

    def __str__(self) -> str:
        return _ERROR_STRINGS.get(self.value, f"NVML Error with code {self.value}")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NVMLError) and self.value == other.value

    __hash__ = Exception.__hash__


def nvmlExceptionClass(nvmlErrorCode: int) -> type[NVMLError]:
    if nvmlErrorCode not in NVMLError._valClassMapping:
        raise ValueError(f"nvmlErrorCode {nvmlErrorCode} is not valid")
    return NVMLError._valClassMapping[nvmlErrorCode]


def _extractNVMLErrorsAsClasses() -> None:
    """NVML_ERROR_NOT_SUPPORTED -> NVMLError_NotSupported, exactly as pynvml names them."""
    this_module = sys.modules[__name__]
    for err_name in [x for x in dir(this_module) if x.startswith("NVML_ERROR_")]:
        class_name = "NVMLError_" + string.capwords(
            err_name.replace("NVML_ERROR_", ""), "_"
        ).replace("_", "")
        err_val = getattr(this_module, err_name)

        def gen_new(val: int) -> Callable[..., NVMLError]:
            def new(typ: type[NVMLError], *args: object) -> NVMLError:
                return NVMLError.__new__(typ, val)

            return new

        new_error_class = type(class_name, (NVMLError,), {"__new__": gen_new(err_val)})
        new_error_class.__module__ = __name__
        setattr(this_module, class_name, new_error_class)
        NVMLError._valClassMapping[err_val] = new_error_class


_extractNVMLErrorsAsClasses()


# -- scripted hardware ----------------------------------------------------------------------


@dataclass
class FakeGpu:
    """One scripted GPU. Set ``energy_mj``/``power_mw`` as the test's time passes; None makes
    that reading answer NVML_ERROR_NOT_SUPPORTED; ``error`` (a code) makes every reading fail
    with it (a GPU falling off the bus is NVML_ERROR_GPU_IS_LOST)."""

    uuid: str
    name: str = "NVIDIA A100-SXM4-40GB"
    energy_mj: int | None = 0
    power_mw: int | None = 100_000
    error: int | None = None


@dataclass
class _Driver:
    gpus: list[FakeGpu] = field(default_factory=list)
    init_error: int | None = None
    refcount: int = 0
    calls: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


_driver = _Driver()


def configure(gpus: list[FakeGpu], *, init_error: int | None = None) -> list[FakeGpu]:
    """Replace the node: these GPUs (NVML index = position); ``init_error`` makes nvmlInit
    fail with that code (NVML_ERROR_LIBRARY_NOT_FOUND on a machine without a driver)."""
    global _driver
    _driver = _Driver(gpus=list(gpus), init_error=init_error)
    return gpus


def calls(name: str) -> int:
    """How many times the named pynvml function was called since :func:`configure`."""
    return _driver.calls.get(name, 0)


def initialized() -> bool:
    return _driver.refcount > 0


class c_nvmlDevice_t:
    """An opaque handle, as pynvml's ctypes pointer is."""

    def __init__(self, index: int) -> None:
        self.index = index


def _count(name: str) -> None:
    with _driver.lock:
        _driver.calls[name] = _driver.calls.get(name, 0) + 1


def _check_init(name: str) -> None:
    _count(name)
    if _driver.refcount <= 0:
        raise NVMLError(NVML_ERROR_UNINITIALIZED)


def _gpu(handle: c_nvmlDevice_t) -> FakeGpu:
    if not isinstance(handle, c_nvmlDevice_t) or not 0 <= handle.index < len(_driver.gpus):
        raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
    gpu = _driver.gpus[handle.index]
    if gpu.error is not None:
        raise NVMLError(gpu.error)
    return gpu


# -- the pynvml API -------------------------------------------------------------------------


def nvmlInitWithFlags(flags: int) -> None:
    _count("nvmlInitWithFlags")
    if _driver.init_error is not None:
        raise NVMLError(_driver.init_error)
    with _driver.lock:
        _driver.refcount += 1


def nvmlInit() -> None:
    nvmlInitWithFlags(0)


def nvmlShutdown() -> None:
    _check_init("nvmlShutdown")
    with _driver.lock:
        _driver.refcount -= 1


def nvmlErrorString(result: int) -> str:
    return _ERROR_STRINGS.get(result, "Unknown Error")


def nvmlSystemGetDriverVersion() -> str:
    _check_init("nvmlSystemGetDriverVersion")
    return "550.54.15"


def nvmlDeviceGetCount() -> int:
    _check_init("nvmlDeviceGetCount")
    return len(_driver.gpus)


def nvmlDeviceGetHandleByIndex(index: int) -> c_nvmlDevice_t:
    _check_init("nvmlDeviceGetHandleByIndex")
    if not 0 <= index < len(_driver.gpus):
        raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
    return c_nvmlDevice_t(index)


def nvmlDeviceGetHandleByUUID(uuid: str) -> c_nvmlDevice_t:
    _check_init("nvmlDeviceGetHandleByUUID")
    for index, gpu in enumerate(_driver.gpus):
        if gpu.uuid == uuid:
            return c_nvmlDevice_t(index)
    raise NVMLError(NVML_ERROR_NOT_FOUND)


def nvmlDeviceGetIndex(handle: c_nvmlDevice_t) -> int:
    _check_init("nvmlDeviceGetIndex")
    _gpu(handle)
    return handle.index


def nvmlDeviceGetUUID(handle: c_nvmlDevice_t) -> str:
    _check_init("nvmlDeviceGetUUID")
    return _gpu(handle).uuid


def nvmlDeviceGetName(handle: c_nvmlDevice_t) -> str:
    _check_init("nvmlDeviceGetName")
    return _gpu(handle).name


def nvmlDeviceGetTotalEnergyConsumption(handle: c_nvmlDevice_t) -> int:
    """Millijoules since the driver loaded (Volta+)."""
    _check_init("nvmlDeviceGetTotalEnergyConsumption")
    gpu = _gpu(handle)
    if gpu.energy_mj is None:
        raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
    return gpu.energy_mj


def nvmlDeviceGetPowerUsage(handle: c_nvmlDevice_t) -> int:
    """Milliwatts."""
    _check_init("nvmlDeviceGetPowerUsage")
    gpu = _gpu(handle)
    if gpu.power_mw is None:
        raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
    return gpu.power_mw
