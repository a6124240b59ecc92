"""Embodied factors (SCI's M) from the service settings: ``[embodied]`` for every region,
a region's own keys over it, the documented defaults when nothing is set."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from scheduler.config import Settings, load_settings
from scheduler.reports.sci import (
    CPU_CORE_EMBODIED_G_PER_HOUR,
    GPU_EMBODIED_G_PER_HOUR,
    EmbodiedFactors,
    factors_for,
)
from scheduler.service.embodied_config import embodied_factors

REGION = '[[regions]]\nname = "{name}"\ngrid_zone = "DE"\ngpus = 1\n{extra}\n'


def _settings(tmp_path: Path, text: str) -> Settings:
    path = tmp_path / "c.toml"
    path.write_text(text)
    return load_settings(path, database_url="sqlite:///" + str(tmp_path / "db.sqlite"))


def test_the_defaults_are_the_documented_ones(tmp_path: Path) -> None:
    settings = load_settings(database_url="sqlite:///" + str(tmp_path / "db.sqlite"))
    default, by_region = embodied_factors(settings)
    assert by_region == {}
    # 150 kg per GPU and 2,500 kg per 64-core node over 6 years at 85 % use.
    assert default.gpu_g_per_hour == pytest.approx(150_000 / (6 * 8760 * 0.85))
    assert default.gpu_g_per_hour == GPU_EMBODIED_G_PER_HOUR
    assert default.cpu_core_g_per_hour == pytest.approx(2_500_000 / 64 / (6 * 8760 * 0.85))
    assert default.cpu_core_g_per_hour == CPU_CORE_EMBODIED_G_PER_HOUR


def test_a_region_overrides_what_it_sets_and_takes_the_rest(tmp_path: Path) -> None:
    settings = _settings(
        tmp_path,
        "[embodied]\ngpu_g_per_hour = 5.0\ncpu_core_g_per_hour = 0.25\n"
        + REGION.format(name="a", extra="embodied_gpu_g_per_hour = 8.0")
        + REGION.format(name="b", extra="embodied_cpu_core_g_per_hour = 0.0")
        + REGION.format(name="c", extra=""),
    )
    default, by_region = embodied_factors(settings)
    assert default == EmbodiedFactors(gpu_g_per_hour=5.0, cpu_core_g_per_hour=0.25)
    assert by_region == {
        "a": EmbodiedFactors(gpu_g_per_hour=8.0, cpu_core_g_per_hour=0.25),
        "b": EmbodiedFactors(gpu_g_per_hour=5.0, cpu_core_g_per_hour=0.0),
    }
    assert factors_for("c", default, by_region) == default
    assert factors_for("a", default, None) == default


@pytest.mark.parametrize(
    "text",
    [
        "[embodied]\ngpu_g_per_hour = -1.0\n" + REGION.format(name="a", extra=""),
        REGION.format(name="a", extra="embodied_cpu_core_g_per_hour = -0.5"),
        REGION.format(name="a", extra="embodied_gpu_g_per_hour = nan"),
    ],
)
def test_negative_or_non_finite_factors_are_refused(tmp_path: Path, text: str) -> None:
    with pytest.raises(ValidationError, match="embodied"):
        _settings(tmp_path, text)
