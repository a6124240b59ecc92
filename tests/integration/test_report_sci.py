"""SCI per R in ``GET /v1/reports/savings``, computed by hand from the stored rows: energy,
the actual intensity of each hour, the region's PUE, embodied emissions with a per-region
factor, and the functional units the workers reported. Both report paths (per job and the
SQL sums), on SQLite and PostgreSQL, give the same figures.

Stored actual intensity (g/kWh), one point per hour from 06:00 UTC:

    zone          06:00  07:00      region (PUE)      embodied g/GPU-h, g/core-h
    DE            100    300        eu-central 1.15   10, 2   (its own)
    ES            200    250        eu-south   1.2    4, 0.5  ([embodied])
    US-CAL-CISO   150    150        us-west    1.1    4, 0.5  ([embodied])

Jobs (all ran at home, so the baseline is the same profile moved back to submit time):

    job  kind        region      GPUs cores  ran          energy                units
    j1   training    eu-central  1    2      06:00-08:00  0.5 kWh @06, 1 kWh @07  4,000 steps
    j2   training    eu-central  0    4      07:00-08:00  0.2 kWh @07             1,000 steps
    j3   deployment  eu-south    1    1      06:00-08:00  1 kWh @06, 1 kWh @07    20,000 req.
    j4   training    us-west     0    1      06:00-07:00  0.1 kWh @06             (none)

    j1: O = 0.5 x 1.15 x 100 + 1 x 1.15 x 300 = 402.5 g; M = 2 h x (1 x 10 + 2 x 2) = 28 g
        SCI = 430.5 g / 4 R = 107.625 g per 1,000 steps
    j2: O = 0.2 x 1.15 x 300 = 69 g; M = 1 h x 4 x 2 = 8 g; SCI = 77 g / 1 R = 77 g
        (submitted 06:00: baseline 0.2 x 1.15 x 100 = 23 g)
    j3: O = 1 x 1.2 x 200 + 1 x 1.2 x 250 = 540 g; M = 2 h x (4 + 0.5) = 9 g
        SCI = 549 g / 20 R = 27.45 g per 1,000 requests;
        2 kWh / 20 = 0.1 kWh and 540 g / 20 = 27 g per 1,000 requests
    j4: O = 0.1 x 1.1 x 150 = 16.5 g; M = 1 h x 0.5 = 0.5 g; no count: no SCI per R

    region eu-central (j1, j2: steps): (471.5 + 36) g / 5 R = 101.5 g per 1,000 steps
    region eu-south (j3): as j3; region us-west (j4): none (a job without a count)
    kind training (j1, j2, j4): none (j4 has no count); kind deployment (j3): as j3
    total: none (steps and requests do not add up)
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from scheduler.api.app import create_app
from scheduler.bootstrap import build_service
from scheduler.config import load_settings
from scheduler.domain import (
    EnergyReport,
    Forecast,
    IntensityPoint,
    Job,
    JobEvent,
    JobKind,
    JobSpec,
    JobState,
    MeterMethod,
    Resources,
    Role,
    SeriesKind,
)
from scheduler.domain.progress import JobProgress
from scheduler.service import GreenlightService, views
from tests.fakes.clock import FakeClock

T0 = datetime(2023, 3, 1, 6, tzinfo=UTC)
J_PER_KWH = 3_600_000.0
CONFIG = """
[embodied]
gpu_g_per_hour = 4.0
cpu_core_g_per_hour = 0.5

[[regions]]
name = "eu-central"
grid_zone = "DE"
gpus = 8
pue = 1.15
embodied_gpu_g_per_hour = 10.0
embodied_cpu_core_g_per_hour = 2.0

[[regions]]
name = "eu-south"
grid_zone = "ES"
gpus = 8
pue = 1.2

[[regions]]
name = "us-west"
grid_zone = "US-CAL-CISO"
gpus = 8
pue = 1.1
"""
INTENSITY = {"DE": (100.0, 300.0), "ES": (200.0, 250.0), "US-CAL-CISO": (150.0, 150.0)}
# (id, kind, region, gpus, cores, submitted h, started h, finished h, [(hour, minutes, kWh)])
JOBS = (
    ("j1", JobKind.TRAINING, "eu-central", 1, 2.0, 0, 0, 2, [(0, 30, 0.5), (1, 30, 1.0)]),
    ("j2", JobKind.TRAINING, "eu-central", 0, 4.0, 0, 1, 2, [(1, 30, 0.2)]),
    ("j3", JobKind.DEPLOYMENT, "eu-south", 1, 1.0, 0, 0, 2, [(0, 60, 1.0), (1, 60, 1.0)]),
    ("j4", JobKind.TRAINING, "us-west", 0, 1.0, 0, 0, 1, [(0, 30, 0.1)]),
)
UNITS = {"j1": (4000.0, "steps"), "j2": (1000.0, "steps"), "j3": (20_000.0, "requests")}


def _store_rows(service: GreenlightService) -> None:
    store = service.ctx.store
    for zone, (first, second) in INTENSITY.items():
        values = [first, second] + [second] * 22  # T0 .. T0 + 24 h
        store.append_forecast(
            Forecast(
                zone=zone,
                provider="replay",
                kind=SeriesKind.ACTUAL,
                issued_at=T0 + timedelta(days=1),
                resolution_s=3600,
                points=tuple(
                    IntensityPoint(valid_at=T0 + timedelta(hours=h - 24), g_per_kwh=first)
                    for h in range(24)
                )
                + tuple(
                    IntensityPoint(valid_at=T0 + timedelta(hours=h), g_per_kwh=v)
                    for h, v in enumerate(values)
                ),
            )
        )
    reports = []
    for job_id, kind, region, gpus, cores, sub_h, start_h, end_h, energy in JOBS:
        spec = JobSpec(
            tenant="acme",
            name=job_id,
            kind=kind,
            entrypoint="true",
            home_region=region,
            expected_duration_s=3600.0 if kind is JobKind.TRAINING else None,
            max_delay_s=6 * 3600.0,
            resources=Resources(gpus=gpus, cpus=cores),
        )
        started = T0 + timedelta(hours=start_h)
        job = Job(
            id=job_id,
            spec=spec,
            state=JobState.SUCCEEDED,
            created_at=T0 + timedelta(hours=sub_h),
            updated_at=T0 + timedelta(hours=end_h),
            attempt=1,
            region=region,
            submission_id=f"{job_id}-1",
            started_at=started,
            finished_at=T0 + timedelta(hours=end_h),
        )
        event = JobEvent(
            job_id=job_id,
            at=started,
            kind="state",
            actor="test",
            reason="ran",
            to_state=JobState.SUCCEEDED,
        )
        store.add_job(job, event)
        for hour, minutes, kwh in energy:
            at = T0 + timedelta(hours=hour)
            reports.append(
                EnergyReport(
                    job_id=job_id,
                    attempt=1,
                    node="n",
                    device="gpu:0",
                    interval_start=at,
                    interval_end=at + timedelta(minutes=minutes),
                    energy_j=kwh * J_PER_KWH,
                    method=MeterMethod.NVML_COUNTER,
                )
            )
    store.add_energy_reports(reports)
    for job_id, (units, unit) in UNITS.items():
        store.record_progress(JobProgress(job_id=job_id, attempt=1, units=units, unit=unit))


@pytest.fixture
def served(database_url: str, tmp_path: Path) -> Iterator[tuple[TestClient, str]]:
    config = tmp_path / "greenlight.toml"
    config.write_text(CONFIG)
    service = build_service(
        load_settings(config, database_url=database_url), clock=FakeClock(T0 + timedelta(days=1))
    )
    _store_rows(service)
    admin, _ = service.create_token(tenant="ops", role=Role.ADMIN)
    with TestClient(create_app(service)) as http:
        yield http, f"Bearer {admin}"


# Every figure by hand (see the module docstring): operational, embodied, units, per R.
BY_HAND_JOBS = {
    "j1": (402.5, 28.0, 4000.0, "steps", 107.625, None, None),
    "j2": (69.0, 8.0, 1000.0, "steps", 77.0, None, None),
    "j3": (540.0, 9.0, 20_000.0, "requests", 27.45, 0.1, 27.0),
    "j4": (16.5, 0.5, None, None, None, None, None),
}
# group -> (units, unit, sci_g_per_r, kWh per 1k requests, g per 1k requests)
BY_HAND_GROUPS = {
    ("region", "eu-central"): (5000.0, "steps", 101.5, None, None),
    ("region", "eu-south"): (20_000.0, "requests", 27.45, 0.1, 27.0),
    ("region", "us-west"): (None, None, None, None, None),
    ("kind", "training"): (None, None, None, None, None),
    ("kind", "deployment"): (20_000.0, "requests", 27.45, 0.1, 27.0),
}
PER_R = (
    "functional_units",
    "functional_unit",
    "sci_g_per_r",
    "energy_kwh_per_1k_requests",
    "emissions_g_per_1k_requests",
)


def _approx(value: Any) -> Any:
    return pytest.approx(value, rel=1e-9) if isinstance(value, float) else value


def _report(http: TestClient, auth: str, group_by: str) -> dict[str, Any]:
    response = http.get(
        "/v1/reports/savings", params={"group_by": group_by}, headers={"Authorization": auth}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.mark.parametrize("path", ["per-job", "sql-sums"])
def test_sci_per_r_by_hand(
    served: tuple[TestClient, str], monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    http, auth = served
    if path == "sql-sums":
        monkeypatch.setattr(views, "EXACT_MAX_JOBS", 0)
    for group_by in ("region", "kind"):
        report = _report(http, auth, group_by)
        groups = {g["key"]: g for g in report["groups"]}
        for (by, key), figures in BY_HAND_GROUPS.items():
            if by != group_by:
                continue
            got = tuple(groups[key][name] for name in PER_R)
            assert got == tuple(_approx(v) for v in figures), (path, by, key)
        total = report["total"]
        assert total["embodied_g"] == pytest.approx(28.0 + 8.0 + 9.0 + 0.5)
        assert total["emissions_g"] == pytest.approx(402.5 + 69.0 + 540.0 + 16.5)
        assert [total[name] for name in PER_R] == [None] * 5  # steps and requests mixed
    if path == "sql-sums":
        assert report["jobs"] == []
        return
    jobs = {j["job_id"]: j for j in report["jobs"]}
    for job_id, (operational, embodied, *per_r) in BY_HAND_JOBS.items():
        job = jobs[job_id]
        assert job["emissions_g"] == pytest.approx(operational, rel=1e-9), job_id
        assert job["embodied_g"] == pytest.approx(embodied, rel=1e-9), job_id
        assert tuple(job[name] for name in PER_R) == tuple(_approx(v) for v in per_r), job_id
    assert jobs["j2"]["baseline_g"] == pytest.approx(23.0)


def test_every_format_carries_sci_per_r(served: tuple[TestClient, str]) -> None:
    http, auth = served
    headers = {"Authorization": auth}

    def fetch(fmt: str) -> str:
        response = http.get(
            "/v1/reports/savings",
            params={"group_by": "region", "format": fmt},
            headers=headers,
        )
        assert response.status_code == 200, response.text
        return response.text

    csv_text = fetch("csv")
    header, *rows = [line.split(",") for line in csv_text.strip().splitlines()]
    j3 = dict(zip(header, next(r for r in rows if r[0] == "j3"), strict=True))
    assert float(j3["sci_g_per_r"]) == pytest.approx(27.45)
    assert float(j3["energy_kwh_per_1k_requests"]) == pytest.approx(0.1)
    assert float(j3["emissions_g_per_1k_requests"]) == pytest.approx(27.0)
    assert (j3["functional_units"], j3["functional_unit"]) == ("20000.0", "requests")
    text = fetch("text")
    assert "101.5 g/1k steps" in text  # eu-central's accounting row
    assert "27.4 g/1k requests" in text or "27.5 g/1k requests" in text
    assert "5,000 steps" in text
    html = fetch("html")
    assert "SCI per R</th>" in html
    assert "101.5 g/1k steps" in html
