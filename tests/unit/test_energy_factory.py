"""CompositeMeter and the factory that picks NVML, RAPL or estimates."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

import tests.fakes.pynvml as fake_nvml
from scheduler.domain.energy import MeterMethod as DomainMeterMethod
from tests.fakes.pynvml import FakeGpu
from tests.fakes.rapl import FakePowercap
from workers.energy import (
    CompositeMeter,
    EstimateMeter,
    Meter,
    MeterMethod,
    MeterReadError,
    PowerSpec,
    build_meter,
    probe_hardware,
)


@pytest.fixture
def nvml() -> Iterator[ModuleType]:
    fake_nvml.configure([])
    probe_hardware.cache_clear()
    yield fake_nvml
    probe_hardware.cache_clear()
    assert not fake_nvml.initialized()


@pytest.fixture
def powercap(tmp_path: Path) -> FakePowercap:
    tree = FakePowercap(tmp_path / "powercap")
    tree.add_zone("intel-rapl:0", "package-0")
    return tree


class FlakyMeter(Meter):
    """A meter whose reads fail on demand, to exercise the composite's hold-last rule."""

    def __init__(self) -> None:
        self.energy_j = 0.0
        self.failing = False

    def devices(self) -> list[str]:
        return ["flaky:0"]

    def method(self, device: str) -> MeterMethod:
        return MeterMethod.RAPL

    def read(self) -> dict[str, float]:
        if self.failing:
            raise MeterReadError("flaky:0", "gone")
        return {"flaky:0": self.energy_j}


def test_method_strings_match_the_scheduler_domain() -> None:
    assert {m.value for m in MeterMethod} == {m.value for m in DomainMeterMethod}
    for method in MeterMethod:
        assert DomainMeterMethod(method.value).name == method.name


def test_composite_merges_and_holds_last_values_through_read_errors() -> None:
    flaky = FlakyMeter()
    composite = CompositeMeter([flaky, EstimateMeter(0, 1.0, 1.0, 10.0, 0.0)])
    assert composite.devices() == ["flaky:0", "estimate:cpu"]
    assert composite.methods() == {
        "flaky:0": MeterMethod.RAPL,
        "estimate:cpu": MeterMethod.ESTIMATE,
    }
    flaky.energy_j = 5.0
    assert composite.read()["flaky:0"] == 5.0
    flaky.failing = True
    flaky.energy_j = 9.0
    readings = composite.read()
    assert readings["flaky:0"] == 5.0
    assert "estimate:cpu" in readings
    flaky.failing = False
    assert composite.read()["flaky:0"] == 9.0


def test_composite_refuses_two_meters_for_one_device() -> None:
    with pytest.raises(ValueError, match="estimate:cpu"):
        CompositeMeter([EstimateMeter(0, 1, 1, 1, 0), EstimateMeter(0, 2, 1, 1, 0)])


def test_auto_uses_nvml_and_rapl_where_present(
    nvml: ModuleType,
    powercap: FakePowercap,
) -> None:
    fake_nvml.configure([FakeGpu(uuid="GPU-a"), FakeGpu(uuid="GPU-b", energy_mj=None)])
    spec = PowerSpec(gpus=2, cpus=float(os.cpu_count() or 1), base_w=20.0)
    with build_meter(spec, nvml=nvml, rapl_root=powercap.root, env={}) as meter:
        assert meter.methods() == {
            "gpu:0": MeterMethod.NVML_COUNTER,
            "gpu:1": MeterMethod.NVML_POWER,
            "cpu:package-0": MeterMethod.RAPL,
            "estimate:base": MeterMethod.ESTIMATE,
        }
        powercap.add_energy("intel-rapl:0", 7_000_000)
        assert meter.read()["cpu:package-0"] == pytest.approx(7.0)


def test_auto_estimates_what_is_missing(nvml: ModuleType, tmp_path: Path) -> None:
    fake_nvml.configure([], init_error=fake_nvml.NVML_ERROR_LIBRARY_NOT_FOUND)
    spec = PowerSpec(gpus=2, cpus=3.0, gpu_w=250.0, cpu_core_w=10.0, base_w=15.0)
    with build_meter(spec, nvml=nvml, rapl_root=tmp_path / "none", env={}) as meter:
        assert set(meter.methods().values()) == {MeterMethod.ESTIMATE}
        (estimate,) = [m for m in meter.meters if isinstance(m, EstimateMeter)]
        assert estimate.power_w == {
            "estimate:gpu": 500.0,
            "estimate:cpu": 30.0,
            "estimate:base": 15.0,
        }


def test_unknown_gpu_count_without_nvml_estimates_no_gpu(
    nvml: ModuleType,
    tmp_path: Path,
) -> None:
    fake_nvml.configure([], init_error=fake_nvml.NVML_ERROR_DRIVER_NOT_LOADED)
    with build_meter(PowerSpec(), nvml=nvml, rapl_root=tmp_path, env={}) as meter:
        assert meter.devices() == ["estimate:cpu", "estimate:base"]


def test_zero_gpus_requested_meters_no_gpu_even_if_present(
    nvml: ModuleType,
    powercap: FakePowercap,
) -> None:
    fake_nvml.configure([FakeGpu(uuid="GPU-a")])
    with build_meter(
        PowerSpec(gpus=0, cpus=1.0), nvml=nvml, rapl_root=powercap.root, env={}
    ) as meter:
        assert not [d for d in meter.devices() if "gpu" in d]
    # Not even probed: NVML's start is time every CPU job would pay before its command.
    assert fake_nvml.calls("nvmlInit") + fake_nvml.calls("nvmlInitWithFlags") == 0


def test_cuda_visible_devices_from_env_limits_the_gpus(
    nvml: ModuleType,
    powercap: FakePowercap,
) -> None:
    fake_nvml.configure([FakeGpu(uuid="GPU-a"), FakeGpu(uuid="GPU-b")])
    env = {"CUDA_VISIBLE_DEVICES": "1"}
    with build_meter(PowerSpec(gpus=1), nvml=nvml, rapl_root=powercap.root, env=env) as meter:
        assert [d for d in meter.devices() if d.startswith("gpu")] == ["gpu:1"]


def test_estimate_mode_touches_no_hardware(nvml: ModuleType, powercap: FakePowercap) -> None:
    fake_nvml.configure([FakeGpu(uuid="GPU-a")])
    spec = PowerSpec(gpus=1, cpus=2.0)
    with build_meter(spec, mode="estimate", nvml=nvml, rapl_root=powercap.root) as meter:
        assert meter.devices() == ["estimate:gpu", "estimate:cpu", "estimate:base"]
    assert fake_nvml.calls("nvmlInitWithFlags") == 0


def test_probe_is_cached(nvml: ModuleType, powercap: FakePowercap) -> None:
    fake_nvml.configure([FakeGpu(uuid="GPU-a")])
    first = probe_hardware(nvml, powercap.root, None)
    assert first.nvml_devices == ("gpu:0",)
    assert first.rapl_devices == ("cpu:package-0",)
    inits = fake_nvml.calls("nvmlInitWithFlags")
    assert probe_hardware(nvml, powercap.root, None) is first
    assert fake_nvml.calls("nvmlInitWithFlags") == inits


def test_rapl_share_follows_the_jobs_cpus(nvml: ModuleType, powercap: FakePowercap) -> None:
    fake_nvml.configure([])
    cores = os.cpu_count() or 1
    spec = PowerSpec(gpus=0, cpus=cores / 4, base_w=0.0)
    with build_meter(spec, nvml=nvml, rapl_root=powercap.root, env={}) as meter:
        powercap.add_energy("intel-rapl:0", 8_000_000)
        assert meter.read() == pytest.approx({"cpu:package-0": 2.0})
