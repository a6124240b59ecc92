"""``GET /v1/reports/savings``: group_by, from/to, tenant isolation, with every figure
recomputed here from the stored rows (not from the report code)."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from scheduler.api.app import create_app
from scheduler.bootstrap import build_service
from scheduler.config import load_settings
from scheduler.domain import J_PER_KWH, JobState, MeterMethod, Role, effective_deadline
from scheduler.service import GreenlightService
from tests.fakes.clock import FakeClock
from tests.integration.test_savings_aggregate import T0, ran

GPU_G_PER_H = 150_000 / (6 * 8760 * 0.85)
CORE_G_PER_H = GPU_G_PER_H * 2_500_000 / 64 / 150_000
STEP_S = 300.0


@pytest.fixture
def served(sqlite_url: str) -> Iterator[tuple[TestClient, GreenlightService, dict[str, str]]]:
    service = build_service(
        load_settings(database_url=sqlite_url), clock=FakeClock(T0 + timedelta(days=4))
    )
    ran(service, 40, seed=3)
    tokens = {
        "acme": service.create_token(tenant="acme", role=Role.USER)[0],
        "ops": service.create_token(tenant="ops", role=Role.ADMIN)[0],
    }
    with TestClient(create_app(service)) as http:
        yield http, service, {k: f"Bearer {v}" for k, v in tokens.items()}


def expected_by_region(service: GreenlightService, tenant: str) -> dict[str, dict[str, Any]]:
    """The job figures per region, from the stored jobs and energy reports."""
    store = service.ctx.store
    jobs, _ = store.list_jobs(tenant=tenant, limit=10_000, states=[JobState.SUCCEEDED])
    energy = store.energy_reports([j.id for j in jobs])
    by_region: dict[str, list[Any]] = defaultdict(list)
    for job in jobs:
        assert job.region is not None
        by_region[job.region].append(job)
    out = {}
    for name, group in by_region.items():
        ids = {j.id for j in group}
        mine = [r for r in energy if r.job_id in ids]
        delays = sorted((j.started_at - j.created_at).total_seconds() for j in group)
        out[name] = {
            "jobs": len(group),
            "energy_kwh": sum(r.energy_j for r in mine) / J_PER_KWH,
            "estimated_kwh": sum(r.energy_j for r in mine if r.method is MeterMethod.ESTIMATE)
            / J_PER_KWH,
            "embodied_g": sum(
                (j.finished_at - j.started_at).total_seconds()
                / 3600
                * (j.spec.resources.gpus * GPU_G_PER_H + j.spec.resources.cpus * CORE_G_PER_H)
                for j in group
            ),
            "mean_delay_s": sum(delays) / len(delays),
            "p95_delay_s": delays[math.ceil(0.95 * len(delays)) - 1],
            "deadline_misses": sum(
                j.finished_at > effective_deadline(j.spec, j.created_at) for j in group
            ),
            "moved_in_time_share": sum(d > STEP_S for d in delays) / len(group),
            "moved_in_space_share": sum(j.region != j.spec.home_region for j in group) / len(group),
        }
    return out


def test_group_by_region_for_a_user_is_their_tenant_only_and_recomputes(
    served: tuple[TestClient, GreenlightService, dict[str, str]],
) -> None:
    http, service, auth = served
    response = http.get(
        "/v1/reports/savings",
        params={"group_by": "region"},
        headers={"Authorization": auth["acme"]},
    )
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["group_by"] == "region"
    assert report["filters"]["tenant"] == "acme"
    assert {j["tenant"] for j in report["jobs"]} == {"acme"}
    expected = expected_by_region(service, "acme")
    assert {g["key"] for g in report["groups"]} == set(expected)
    for group in report["groups"]:
        want = expected[group["key"]]
        for name, value in want.items():
            assert group[name] == pytest.approx(value, rel=1e-9), (group["key"], name)
        assert group["measured_kwh"] == pytest.approx(want["energy_kwh"] - want["estimated_kwh"])
        assert group["operational_g"] == group["emissions_g"]
    everyone = http.get(
        "/v1/reports/savings",
        params={"group_by": "tenant"},
        headers={"Authorization": auth["ops"]},
    ).json()
    assert [g["key"] for g in everyone["groups"]] == ["acme", "globex"]
    assert sum(g["jobs"] for g in everyone["groups"]) == 40


def test_from_to_and_their_aliases_agree(
    served: tuple[TestClient, GreenlightService, dict[str, str]],
) -> None:
    http, _, auth = served
    headers = {"Authorization": auth["ops"]}
    window = {"from": "2023-03-02T00:00:00Z", "to": "2023-03-03T00:00:00Z"}
    new = http.get("/v1/reports/savings", params=window, headers=headers).json()
    old = http.get(
        "/v1/reports/savings",
        params={"start": window["from"], "end": window["to"]},
        headers=headers,
    ).json()
    assert new["total"] == old["total"]
    assert 0 < new["total"]["jobs"] < 40
    assert new["filters"]["from"] == "2023-03-02T00:00:00Z"
    assert new["filters"]["to"] == "2023-03-03T00:00:00Z"


@pytest.mark.parametrize(("param", "value"), [("group_by", "colour"), ("period", "fortnight")])
def test_bad_groupings_name_the_accepted_values(
    served: tuple[TestClient, GreenlightService, dict[str, str]], param: str, value: str
) -> None:
    http, _, auth = served
    response = http.get(
        "/v1/reports/savings", params={param: value}, headers={"Authorization": auth["ops"]}
    )
    assert response.status_code == 422
    detail = str(response.json())
    assert "day, week" in detail
    assert "pattern" not in detail


def test_openapi_describes_the_method_and_its_defaults(
    served: tuple[TestClient, GreenlightService, dict[str, str]],
) -> None:
    http, _, _ = served
    operation = http.get("/openapi.json").json()["paths"]["/v1/reports/savings"]["get"]
    text = operation["description"]
    for needle in ("Scope 2", "SCI = (E x I + M) per R", "PUE", "arXiv:2211.02001", "3.36 g"):
        assert needle in text
    names = {p["name"] for p in operation["parameters"]}
    assert {"from", "to", "start", "end", "group_by", "period"} <= names
