"""EstimateMeter: configured power x elapsed time."""

from __future__ import annotations

import pytest

from workers.energy import EstimateMeter, MeterMethod


class Seconds:
    def __init__(self) -> None:
        self.now_s = 50.0

    def __call__(self) -> float:
        return self.now_s


def test_energy_is_power_times_elapsed_per_device_class() -> None:
    clock = Seconds()
    meter = EstimateMeter(2, 4.0, 300.0, 12.0, 20.0, monotonic_s=clock)
    assert meter.devices() == ["estimate:gpu", "estimate:cpu", "estimate:base"]
    assert meter.power_w == {"estimate:gpu": 600.0, "estimate:cpu": 48.0, "estimate:base": 20.0}
    assert meter.read() == {"estimate:gpu": 0.0, "estimate:cpu": 0.0, "estimate:base": 0.0}
    clock.now_s += 10.0
    assert meter.read() == pytest.approx(
        {"estimate:gpu": 6000.0, "estimate:cpu": 480.0, "estimate:base": 200.0}
    )
    assert meter.method("estimate:cpu") is MeterMethod.ESTIMATE


def test_devices_with_zero_power_are_left_out() -> None:
    meter = EstimateMeter(0, 0.5, 300.0, 12.0, 0.0, monotonic_s=Seconds())
    assert meter.devices() == ["estimate:cpu"]
    with pytest.raises(KeyError):
        meter.method("estimate:gpu")


def test_negative_configuration_is_refused() -> None:
    with pytest.raises(ValueError, match="gpu_w"):
        EstimateMeter(1, 1.0, -5.0, 12.0, 20.0)
