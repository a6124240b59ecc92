"""RaplMeter against a scripted powercap tree, including counter wraparound."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fakes.rapl import FakePowercap
from workers.energy import MeterMethod, MeterReadError, MeterUnavailable, RaplMeter


@pytest.fixture
def powercap(tmp_path: Path) -> FakePowercap:
    tree = FakePowercap(tmp_path / "powercap")
    tree.add_zone("intel-rapl:0", "package-0", energy_uj=1_000_000)
    tree.add_zone("intel-rapl:0:0", "core", energy_uj=500)
    tree.add_zone("intel-rapl:0:1", "uncore", energy_uj=500)
    tree.add_zone("intel-rapl:0:2", "dram", energy_uj=7_000)
    tree.add_zone("intel-rapl:1", "package-1", energy_uj=0, max_range_uj=10_000_000)
    tree.add_zone("intel-rapl:2", "psys", energy_uj=0)
    return tree


def test_packages_and_dram_are_metered_and_nested_zones_skipped(powercap: FakePowercap) -> None:
    meter = RaplMeter(root=powercap.root)
    assert meter.devices() == ["cpu:package-0", "dram:package-0", "cpu:package-1"]
    assert {meter.method(d) for d in meter.devices()} == {MeterMethod.RAPL}
    assert meter.read() == {"cpu:package-0": 0.0, "dram:package-0": 0.0, "cpu:package-1": 0.0}


def test_energy_is_the_uj_difference_in_joules(powercap: FakePowercap) -> None:
    meter = RaplMeter(root=powercap.root)
    powercap.add_energy("intel-rapl:0", 25_000_000)  # 25 J
    powercap.add_energy("intel-rapl:0:2", 3_000_000)
    powercap.add_energy("intel-rapl:0:0", 99_000_000)  # inside the package: not added again
    assert meter.read() == pytest.approx(
        {"cpu:package-0": 25.0, "dram:package-0": 3.0, "cpu:package-1": 0.0}
    )


def test_counter_wraparound_is_unwrapped(powercap: FakePowercap) -> None:
    powercap.set_energy("intel-rapl:1", 9_000_000)
    meter = RaplMeter(root=powercap.root)
    powercap.add_energy("intel-rapl:1", 2_500_000)  # past the 10 J range
    assert powercap.energy_uj("intel-rapl:1") < 9_000_000, "the fake must have wrapped"
    assert meter.read()["cpu:package-1"] == pytest.approx(2.5)
    for _ in range(5):  # several wraps, each seen by a read
        powercap.add_energy("intel-rapl:1", 6_000_000)
        meter.read()
    assert meter.read()["cpu:package-1"] == pytest.approx(32.5)


def test_share_scales_readings_to_the_jobs_cores(powercap: FakePowercap) -> None:
    meter = RaplMeter(root=powercap.root, share=0.25)
    powercap.add_energy("intel-rapl:0", 40_000_000)
    assert meter.read()["cpu:package-0"] == pytest.approx(10.0)
    with pytest.raises(ValueError, match="share"):
        RaplMeter(root=powercap.root, share=0.0)


def test_missing_tree_or_packages_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(MeterUnavailable, match="no powercap directory"):
        RaplMeter(root=tmp_path / "absent")
    tree = FakePowercap(tmp_path / "only-psys")
    tree.add_zone("intel-rapl:0", "psys")
    with pytest.raises(MeterUnavailable, match="no RAPL package zone"):
        RaplMeter(root=tree.root)


def test_unreadable_package_is_unavailable(tmp_path: Path) -> None:
    tree = FakePowercap(tmp_path / "bad")
    tree.add_zone("intel-rapl:0", "package-0")
    tree.corrupt("intel-rapl:0")
    with pytest.raises(MeterUnavailable, match="cannot read") as caught:
        RaplMeter(root=tree.root)
    assert caught.value.device == "cpu:package-0"
    assert isinstance(caught.value.__cause__, ValueError)


def test_counter_failing_mid_run_is_a_read_error(powercap: FakePowercap) -> None:
    meter = RaplMeter(root=powercap.root)
    powercap.corrupt("intel-rapl:1")
    with pytest.raises(MeterReadError, match="cpu:package-1"):
        meter.read()
