"""NvmlMeter against the fake pynvml: counters, power-sampling fallback, visibility, errors."""

from __future__ import annotations

import inspect
import time
from collections.abc import Iterator
from types import ModuleType

import pynvml as real_pynvml
import pytest

import tests.fakes.pynvml as fake_nvml
from tests.fakes.pynvml import FakeGpu
from workers.energy import (
    MeterMethod,
    MeterReadError,
    MeterUnavailable,
    NvmlMeter,
    parse_visible_devices,
)
from workers.energy.errors import MeterNotSupported


class Seconds:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s


@pytest.fixture
def nvml() -> Iterator[ModuleType]:
    fake_nvml.configure([])
    yield fake_nvml
    assert not fake_nvml.initialized(), "every nvmlInit must be matched by nvmlShutdown"


def two_gpus() -> list[FakeGpu]:
    return fake_nvml.configure(
        [
            FakeGpu(uuid="GPU-aaaa-0000", energy_mj=5_000_000),
            FakeGpu(uuid="GPU-bbbb-1111", energy_mj=9_000_000),
        ]
    )


def test_fake_matches_the_real_pynvml_api() -> None:
    functions = [n for n in dir(fake_nvml) if n.startswith("nvml")]
    assert "nvmlDeviceGetTotalEnergyConsumption" in functions
    for name in functions:
        real = getattr(real_pynvml, name)
        fake_params = list(inspect.signature(getattr(fake_nvml, name)).parameters)
        assert list(inspect.signature(real).parameters) == fake_params, name
    for name in [n for n in dir(fake_nvml) if n.startswith("NVML_ERROR_")]:
        assert getattr(real_pynvml, name) == getattr(fake_nvml, name), name
        real_class = real_pynvml.nvmlExceptionClass(getattr(real_pynvml, name)).__name__
        assert fake_nvml.nvmlExceptionClass(getattr(fake_nvml, name)).__name__ == real_class


def test_counter_energy_is_the_mj_difference_since_start(nvml: ModuleType) -> None:
    gpus = two_gpus()
    with NvmlMeter(nvml=nvml, visible_devices=None) as meter:
        assert meter.devices() == ["gpu:0", "gpu:1"]
        assert meter.method("gpu:0") is MeterMethod.NVML_COUNTER
        assert meter.models["gpu:1"] == "NVIDIA A100-SXM4-40GB"
        gpus[0].energy_mj = 5_000_000 + 1_500  # 1.5 J
        gpus[1].energy_mj = 9_000_000 + 250_000  # 250 J
        assert meter.read() == pytest.approx({"gpu:0": 1.5, "gpu:1": 250.0})
        gpus[0].energy_mj += 500
        assert meter.read()["gpu:0"] == pytest.approx(2.0)


def test_counter_restart_counts_from_zero_instead_of_going_negative(nvml: ModuleType) -> None:
    (gpu,) = fake_nvml.configure([FakeGpu(uuid="GPU-a", energy_mj=10_000)])
    with NvmlMeter(nvml=nvml, visible_devices=None) as meter:
        gpu.energy_mj = 12_000
        assert meter.read()["gpu:0"] == pytest.approx(2.0)
        gpu.energy_mj = 1_000  # the driver reloaded
        assert meter.read()["gpu:0"] == pytest.approx(2.0)
        gpu.energy_mj = 4_000
        assert meter.read()["gpu:0"] == pytest.approx(5.0)


def test_gpu_without_counter_falls_back_to_integrated_power(nvml: ModuleType) -> None:
    (gpu,) = fake_nvml.configure([FakeGpu(uuid="GPU-a", energy_mj=None, power_mw=100_000)])
    clock = Seconds()
    with NvmlMeter(
        nvml=nvml, visible_devices=None, sample_interval_s=None, monotonic_s=clock
    ) as meter:
        assert meter.method("gpu:0") is MeterMethod.NVML_POWER
        clock.now_s += 2.0
        gpu.power_mw = 300_000
        # trapezoid: (100 W + 300 W) / 2 * 2 s
        assert meter.read()["gpu:0"] == pytest.approx(400.0)
        clock.now_s += 1.0
        assert meter.read()["gpu:0"] == pytest.approx(700.0)


def test_use_counter_false_forces_power_sampling(nvml: ModuleType) -> None:
    two_gpus()
    with NvmlMeter(
        nvml=nvml, visible_devices=None, use_counter=False, sample_interval_s=None
    ) as meter:
        assert {meter.method(d) for d in meter.devices()} == {MeterMethod.NVML_POWER}
    assert fake_nvml.calls("nvmlDeviceGetTotalEnergyConsumption") == 0


def test_background_thread_samples_power_between_reads(nvml: ModuleType) -> None:
    fake_nvml.configure([FakeGpu(uuid="GPU-a", energy_mj=None, power_mw=50_000)])
    with NvmlMeter(nvml=nvml, visible_devices=None, sample_interval_s=0.01):
        deadline = time.monotonic() + 10
        while fake_nvml.calls("nvmlDeviceGetPowerUsage") < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert fake_nvml.calls("nvmlDeviceGetPowerUsage") >= 4


@pytest.mark.parametrize(
    ("visible", "expected"),
    [
        ("1", ["gpu:1"]),
        ("1,0", ["gpu:1", "gpu:0"]),
        ("GPU-bbbb", ["gpu:1"]),
        ("0,-1,1", ["gpu:0"]),
        ("0,7,1", ["gpu:0"]),
        ("0,0", ["gpu:0"]),
    ],
)
def test_cuda_visible_devices_selects_gpus(
    nvml: ModuleType,
    visible: str,
    expected: list[str],
) -> None:
    two_gpus()
    with NvmlMeter(nvml=nvml, visible_devices=visible) as meter:
        assert meter.devices() == expected


def test_visible_devices_default_comes_from_the_environment(
    nvml: ModuleType,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    two_gpus()
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    with NvmlMeter(nvml=nvml) as meter:
        assert meter.devices() == ["gpu:1"]


def test_no_visible_gpu_is_unavailable_and_shuts_nvml_down(nvml: ModuleType) -> None:
    two_gpus()
    with pytest.raises(MeterUnavailable, match="no visible GPU"):
        NvmlMeter(nvml=nvml, visible_devices="")


def test_missing_library_maps_to_meter_unavailable_with_cause(nvml: ModuleType) -> None:
    fake_nvml.configure([], init_error=fake_nvml.NVML_ERROR_LIBRARY_NOT_FOUND)
    with pytest.raises(MeterUnavailable) as caught:
        NvmlMeter(nvml=nvml)
    assert not isinstance(caught.value, MeterNotSupported)
    assert isinstance(
        caught.value.__cause__, fake_nvml.nvmlExceptionClass(fake_nvml.NVML_ERROR_LIBRARY_NOT_FOUND)
    )
    assert "Library Not Found" in str(caught.value)


def test_gpu_with_neither_counter_nor_power_is_unavailable(nvml: ModuleType) -> None:
    fake_nvml.configure([FakeGpu(uuid="GPU-a", energy_mj=None, power_mw=None)])
    with pytest.raises(MeterUnavailable, match="neither energy counter nor power") as caught:
        NvmlMeter(nvml=nvml, visible_devices=None)
    assert caught.value.device == "gpu:0"


def test_lost_gpu_raises_read_error_from_the_nvml_error(nvml: ModuleType) -> None:
    (gpu,) = fake_nvml.configure([FakeGpu(uuid="GPU-a", energy_mj=0)])
    with NvmlMeter(nvml=nvml, visible_devices=None) as meter:
        gpu.error = fake_nvml.NVML_ERROR_GPU_IS_LOST
        with pytest.raises(MeterReadError, match="GPU is lost") as caught:
            meter.read()
        assert isinstance(
            caught.value.__cause__, fake_nvml.nvmlExceptionClass(fake_nvml.NVML_ERROR_GPU_IS_LOST)
        )
        assert caught.value.device == "gpu:0"


def test_close_is_idempotent(nvml: ModuleType) -> None:
    two_gpus()
    meter = NvmlMeter(nvml=nvml, visible_devices=None)
    meter.close()
    meter.close()
    assert fake_nvml.calls("nvmlShutdown") == 1


def test_parse_visible_devices() -> None:
    assert parse_visible_devices(None) is None
    assert parse_visible_devices("") == []
    assert parse_visible_devices(" 2, GPU-x ,MIG-y") == ["2", "GPU-x", "MIG-y"]
    assert parse_visible_devices("0,NoDevFiles,1") == ["0"]
