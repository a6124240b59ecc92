"""The savings report's packing credit by hand: GPUs powered with and without packing shared
deployments, and the idle energy and grams of the GPUs packing left unpowered."""

from __future__ import annotations

from datetime import datetime

import pytest

from scheduler.domain import Job, JobKind, JobSpec, JobState, Resources
from scheduler.reports.render import report_to_dict, report_to_html, report_to_text
from tests.unit.test_reports import HOUR, T0, build, energy, region, series

REGIONS = {"home": region("home", "H", pue=1.5)}
IDLE_W = 60.0


def deployment(job_id: str, gpus: float, started: datetime, finished: datetime | None) -> Job:
    spec = JobSpec(
        tenant="acme",
        name=job_id,
        kind=JobKind.DEPLOYMENT,
        entrypoint="serve",
        home_region="home",
        resources=Resources(gpus=gpus, cpus=1),
    )
    return Job(
        id=job_id,
        spec=spec,
        state=JobState.SUCCEEDED if finished else JobState.RUNNING,
        created_at=T0,
        updated_at=T0,
        attempt=1,
        region="home",
        started_at=started,
        finished_at=finished,
    )


def test_two_halves_and_a_quarter_by_hand() -> None:
    # a, b: 0.5 each for hours 0-2; c: 0.25 from hour 1, still running at ``now`` (hour 48).
    # Hour 0: {0.5, 0.5} -> 1 GPU packed, 2 unpacked. Hour 1: {0.5, 0.5, 0.25} -> 2 vs 3.
    # Hours 2-48: {0.25} -> 1 vs 1. Packed 49 GPU-h, unpacked 51: 2 GPU-h saved x 60 W =
    # 0.12 kWh, at 400 g/kWh x PUE 1.5 (the saved hours are hours 0 and 1) = 72 g.
    jobs = [
        deployment("a", 0.5, T0, T0 + 2 * HOUR),
        deployment("b", 0.5, T0, T0 + 2 * HOUR),
        deployment("c", 0.25, T0 + HOUR, None),
        deployment("whole", 1, T0, T0 + 3 * HOUR),  # whole GPUs are not packed
    ]
    reports = [energy(j.id, T0, T0 + HOUR, 0.1) for j in jobs[:2]]
    reports += [energy("c", T0 + HOUR, T0 + 2 * HOUR, 0.05), energy("whole", T0, T0 + HOUR, 0.3)]
    report = build(
        jobs,
        reports,
        regions=REGIONS,
        actuals=[series("H", T0, [400.0] * 4)],
        idle_gpu_w=IDLE_W,
    )
    credit = report.packing
    assert credit is not None
    assert credit.deployments == 3
    assert credit.gpu_h_packed == pytest.approx(49.0)
    assert credit.gpu_h_unpacked == pytest.approx(51.0)
    assert (credit.peak_gpus_packed, credit.peak_gpus_unpacked) == (2, 3)
    assert credit.energy_kwh == pytest.approx(0.12)
    assert credit.emissions_g == pytest.approx(72.0)
    as_json = report_to_dict(report)["packing"]
    assert as_json["gpu_h_saved"] == pytest.approx(2.0)
    assert as_json["idle_power_source"] == "configured"
    assert "instead of 51.0 GPU-h (peak 3)" in report_to_text(report)
    assert "instead of 51.0 GPU-h (peak 3)" in report_to_html(report)


def test_no_shared_deployment_no_credit() -> None:
    whole = deployment("whole", 2, T0, T0 + HOUR)
    report = build(
        [whole],
        [energy("whole", T0, T0 + HOUR, 0.3)],
        regions=REGIONS,
        actuals=[series("H", T0, [400.0] * 2)],
        idle_gpu_w=IDLE_W,
    )
    assert report.packing is None
    assert report_to_dict(report)["packing"] is None
