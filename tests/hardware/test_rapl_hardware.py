"""Real RAPL counters while the CPU works; skipped where powercap is absent or unreadable."""

from __future__ import annotations

import hashlib

import pytest

from workers.energy import MeterMethod, MeterUnavailable, RaplMeter

pytestmark = pytest.mark.rapl


def test_package_energy_grows_while_the_cpu_works() -> None:
    try:
        meter = RaplMeter()
    except MeterUnavailable as e:
        pytest.skip(f"RAPL unavailable: {e}")
    digest = b"greenlight"
    for _ in range(200_000):
        digest = hashlib.sha256(digest).digest()
    readings = meter.read()
    packages = [d for d in meter.devices() if d.startswith("cpu:package-")]
    assert packages
    assert all(meter.method(d) is MeterMethod.RAPL for d in packages)
    assert sum(readings[d] for d in packages) > 0
