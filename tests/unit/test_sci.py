"""SCI terms computed by hand: embodied share, SCI per functional unit, the defaults' source."""

from __future__ import annotations

import math

import pytest

from scheduler.reports.sci import (
    CPU_CORE_EMBODIED_G_PER_HOUR,
    GPU_EMBODIED_G_PER_HOUR,
    EmbodiedFactors,
    embodied_g,
    sci,
)


def test_default_factors_follow_the_bloom_estimate() -> None:
    # 150 kg per GPU over 6 years at 85 % use; 2,500 kg per node over 64 cores, same life.
    in_use_h = 6 * 8760 * 0.85
    gpu_g_per_h, core_g_per_h = GPU_EMBODIED_G_PER_HOUR, CPU_CORE_EMBODIED_G_PER_HOUR
    assert gpu_g_per_h == pytest.approx(150_000 / in_use_h)
    assert round(gpu_g_per_h, 3) == 3.358
    assert core_g_per_h == pytest.approx(2_500_000 / 64 / in_use_h)


def test_embodied_share_of_a_two_hour_job() -> None:
    factors = EmbodiedFactors(gpu_g_per_hour=10.0, cpu_core_g_per_hour=0.5)
    # 2 h x (4 GPUs x 10 g/h + 8 cores x 0.5 g/h) = 2 x 44 = 88 g
    assert embodied_g(gpus=4, cpus=8, run_s=7200, factors=factors) == pytest.approx(88.0)
    assert embodied_g(gpus=0, cpus=0, run_s=7200, factors=factors) == 0.0


def test_sci_per_thousand_steps() -> None:
    figures = sci(operational_g=120.0, embodied_g=30.0, kind="training", units=50_000)
    # (120 + 30) g per 50 thousand steps = 3 g per 1,000 steps
    assert figures.sci_g_per_r == pytest.approx(3.0)
    assert figures.total_g == pytest.approx(150.0)
    assert figures.functional_unit == "1,000 training steps"
    served = sci(operational_g=10.0, embodied_g=0.0, kind="deployment", units=2_000)
    assert served.sci_g_per_r == pytest.approx(5.0)
    assert served.functional_unit == "1,000 requests"


@pytest.mark.parametrize("units", [None, 0, math.nan])
def test_sci_without_a_unit_count_is_undefined(units: float | None) -> None:
    assert sci(operational_g=1.0, embodied_g=1.0, kind="training", units=units).sci_g_per_r is None


@pytest.mark.parametrize("bad", [-1.0, math.inf, math.nan])
def test_bad_inputs_are_refused(bad: float) -> None:
    with pytest.raises(ValueError, match="run_s"):
        embodied_g(gpus=1, cpus=1, run_s=bad, factors=EmbodiedFactors())
    with pytest.raises(ValueError, match="gpu_g_per_hour"):
        EmbodiedFactors(gpu_g_per_hour=bad)
