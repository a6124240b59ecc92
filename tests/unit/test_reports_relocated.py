"""A relocated deployment in the savings report: each copy's energy is priced in the region
that copy ran in, not all of it in the region the job ends up in."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest

from scheduler.domain.deployments import Relocation, attempt_region
from scheduler.reports.render import report_to_csv
from tests.unit.test_reports import HOUR, T0, build, energy, make_job, region, series

REGIONS = {
    "home": region("home", "H"),
    "a": region("a", "A", pue=1.2),
    "b": region("b", "B", pue=1.1),
}
ACTUALS = [
    series("H", T0 - HOUR, [500.0] * 12),
    series("A", T0 - HOUR, [400.0] * 12),
    series("B", T0 - HOUR, [100.0] * 12),
]


def _moved(old: int, new: int, to: str, source: str = "a") -> Relocation:
    at = T0 + 2 * HOUR
    return Relocation(
        from_region=source,
        to_region=to,
        old_attempt=old,
        new_attempt=new,
        started_at=at,
        switched_at=at,
        finished_at=at + timedelta(minutes=1),
        expected_saving_g=1.0,
        expected_saving_pct=1.0,
        horizon_s=3600.0,
    )


def test_each_copys_energy_is_priced_where_that_copy_ran() -> None:
    job = dataclasses.replace(
        make_job("d", ran_in="b"),
        attempt=2,
        relocations=(_moved(1, 2, "b"),),
    )
    reports = [
        energy("d", T0, T0 + 2 * HOUR, 2.0, attempt=1),  # in a, before the move
        energy("d", T0 + 2 * HOUR, T0 + 4 * HOUR, 3.0, attempt=2),  # in b, after
    ]
    (row,) = build([job], reports, regions=REGIONS, actuals=ACTUALS).jobs
    assert row.region == "b"
    assert row.emissions_g == pytest.approx(2.0 * 1.2 * 400 + 3.0 * 1.1 * 100)
    assert row.baseline_g == pytest.approx(5.0 * 500)
    assert (row.relocations, row.relocation_expected_saving_g) == (1, 1.0)
    csv_text = report_to_csv(build([job], reports, regions=REGIONS, actuals=ACTUALS))
    header, first = (line.split(",") for line in csv_text.splitlines()[:2])
    assert dict(zip(header, first, strict=False))["relocation_expected_saving_g"] == "1.0"


def test_attempts_map_to_regions_across_moves_rollbacks_and_retries() -> None:
    history = (_moved(1, 3, "b"), _moved(3, 4, "a", source="b"))
    # 2 was a rolled-back copy (it counts where the job was); 5 a retry where the job is now.
    assert [attempt_region(history, n, "c") for n in (1, 2, 3, 4, 5)] == ["a", "a", "b", "c", "c"]
    assert attempt_region((), 7, "c") == "c"
