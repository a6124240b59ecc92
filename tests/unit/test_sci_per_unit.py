"""SCI per R (``scheduler.reports.sci``): per job and for a group, by hand."""

from __future__ import annotations

import pytest

from scheduler.reports.sci import PerUnit, per_unit, shared_units


def test_steps_give_sci_per_thousand_steps_only() -> None:
    # (300 g + 20 g) over 2,500 steps = 2.5 R -> 128 g per 1,000 steps.
    figures = per_unit(
        operational_g=300.0, embodied_g=20.0, energy_kwh=1.0, units=2500.0, unit="steps"
    )
    assert figures.sci_g_per_r == pytest.approx(128.0)
    assert figures.energy_kwh_per_1k_requests is None
    assert figures.emissions_g_per_1k_requests is None


def test_requests_also_give_energy_and_emissions_per_thousand() -> None:
    # 500 requests = 0.5 R: (40 + 2) / 0.5 = 84 g; 0.3 kWh / 0.5; 40 g / 0.5.
    figures = per_unit(
        operational_g=40.0, embodied_g=2.0, energy_kwh=0.3, units=500.0, unit="requests"
    )
    assert figures.sci_g_per_r == pytest.approx(84.0)
    assert figures.energy_kwh_per_1k_requests == pytest.approx(0.6)
    assert figures.emissions_g_per_1k_requests == pytest.approx(80.0)


@pytest.mark.parametrize(("units", "unit"), [(None, None), (0.0, "steps"), (5.0, None)])
def test_no_positive_count_no_figures(units: float | None, unit: str | None) -> None:
    assert per_unit(operational_g=1, embodied_g=1, energy_kwh=1, units=units, unit=unit) == (
        PerUnit()
    )


def test_a_group_shares_units_only_when_every_job_counted_one_unit() -> None:
    assert shared_units(3, 3, 600.0, ["steps", "steps"]) == (600.0, "steps")
    assert shared_units(3, 2, 600.0, ["steps"]) == (None, None)  # a job without a count
    assert shared_units(2, 2, 600.0, ["steps", "requests"]) == (None, None)
    assert shared_units(0, 0, 0.0, []) == (None, None)
