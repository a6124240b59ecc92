"""A report group as plain JSON types (``report_to_dict``'s shape for every grouping).

Its own module so the HTML page and the other renderers share it without importing each other.
"""

from __future__ import annotations

from typing import Any

from scheduler.reports.savings import GroupSavings

__all__ = ["group_to_dict"]


def group_to_dict(group: GroupSavings) -> dict[str, Any]:
    """Every figure of ``group``; floats at full precision, None where not known."""
    return {
        "key": group.key,
        "jobs": group.jobs,
        "energy_kwh": group.energy_kwh,
        "emissions_g": group.emissions_g,
        "baseline_g": group.baseline_g,
        "saved_g": group.saved_g,
        "saved_pct": group.saved_pct,
        "measured_kwh": group.measured_kwh,
        "estimated_kwh": group.estimated_kwh,
        "operational_g": group.emissions_g,
        "embodied_g": group.embodied_g,
        "mean_delay_s": group.mean_delay_s,
        "p95_delay_s": group.p95_delay_s,
        "deadline_misses": group.deadline_misses,
        "moved_in_time_share": group.moved_in_time_share,
        "moved_in_space_share": group.moved_in_space_share,
        "functional_units": group.functional_units,
        "functional_unit": group.functional_unit,
        "sci_g_per_r": group.sci_g_per_r,
        "energy_kwh_per_1k_requests": group.energy_kwh_per_1k_requests,
        "emissions_g_per_1k_requests": group.emissions_g_per_1k_requests,
        "relocations": group.relocations,
        "relocation_expected_saving_g": group.relocation_expected_saving_g,
    }
