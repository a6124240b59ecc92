"""The REST API through ``TestClient(create_app(service))`` with a real service on a SQLite file.

No Ray: submitting plans a job but nothing here runs a dispatch cycle. Jobs that must look
"ran" for the savings report are moved along by the real store, as the dispatch and reconcile
cycles would.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from scheduler.api.app import create_app
from scheduler.bootstrap import build_service
from scheduler.config import load_settings
from scheduler.domain import JobEvent, JobState, Role
from scheduler.service import GreenlightService
from tests.fakes.clock import FakeClock

T0 = datetime(2023, 3, 1, 6, tzinfo=UTC)


@dataclass
class Api:
    http: TestClient
    service: GreenlightService
    clock: FakeClock
    acme: str  # user token, tenant acme
    globex: str  # user token, tenant globex
    admin: str  # admin token, tenant ops

    def as_(self, secret: str | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {secret}"} if secret else {}

    def submit(self, secret: str, **overrides: Any) -> dict[str, Any]:
        response = self.http.post("/v1/jobs", json=job_body(**overrides), headers=self.as_(secret))
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body


def job_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "train",
        "entrypoint": "python train.py",
        "home_region": "eu-central",
        "expected_duration_s": 3600,
        "max_delay_s": 6 * 3600,
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


@pytest.fixture
def api(sqlite_url: str) -> Iterator[Api]:
    clock = FakeClock(T0)
    service = build_service(load_settings(database_url=sqlite_url), clock=clock)
    tokens = {
        tenant: service.create_token(tenant=tenant, role=role)[0]
        for tenant, role in (("acme", Role.USER), ("globex", Role.USER), ("ops", Role.ADMIN))
    }
    with TestClient(create_app(service)) as http:
        yield Api(
            http=http,
            service=service,
            clock=clock,
            acme=tokens["acme"],
            globex=tokens["globex"],
            admin=tokens["ops"],
        )


def field_of(item: dict[str, Any]) -> str:
    """``{"loc": ["body", "resources", "gpus"]}`` -> ``resources.gpus``."""
    return ".".join(str(part) for part in item["loc"][1:])


# --- submit -------------------------------------------------------------------------------


def test_submit_returns_the_stored_job_with_its_plan(api: Api) -> None:
    assert set(api.service.pull_forecasts().values()) == {"ok"}
    job = api.submit(api.acme, resources={"gpus": 1, "cpus": 2, "memory_mb": 512})
    assert job["id"]
    assert job["tenant"] == "acme"
    assert job["resources"] == {"gpus": 1, "cpus": 2.0, "memory_mb": 512}
    assert job["state"] == "pending"  # a submit never plans: the cycle it wakes does
    api.service.plan_cycle()
    fetched = api.http.get(f"/v1/jobs/{job['id']}", headers=api.as_(api.acme)).json()
    assert fetched["id"] == job["id"]
    assert fetched["created_at"] == "2023-03-01T06:00:00Z"
    assert fetched["state"] == "planned"
    plan = fetched["plan"]
    assert plan["region"] in {"eu-central", "eu-south", "us-west"}
    assert plan["forecast_issued_at"] == "2023-03-01T06:00:00Z"
    latest_start = "2023-03-01T12:00:00Z"  # submit + max_delay_s
    assert "2023-03-01T06:00:00Z" <= plan["planned_start"] <= latest_start
    assert plan["windows"][0]["start"] == plan["planned_start"]
    assert plan["forecast_emissions_g"] > 0
    # never worse than running now at home, on the forecast it used
    assert plan["forecast_emissions_g"] <= plan["baseline_emissions_g"] + 1e-6
    assert plan["expected_saving_g"] == pytest.approx(
        plan["baseline_emissions_g"] - plan["forecast_emissions_g"]
    )


NOW_PLUS_30_MIN = (T0 + timedelta(minutes=30)).isoformat()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"entrypoint": None}, "entrypoint"),
        ({"entrypoint": "   "}, "entrypoint"),
        ({"expected_duration_s": 0}, "expected_duration_s"),
        ({"expected_duration_s": -5}, "expected_duration_s"),
        ({"deadline": NOW_PLUS_30_MIN, "max_delay_s": None}, "deadline"),
        ({"home_region": "mars-1"}, "home_region"),
        ({"allowed_regions": ["eu-central", "atlantis"]}, "allowed_regions"),
        ({"allowed_regions": ["eu-south"]}, "home_region"),  # home outside the allowed ones
        ({"resources": {"gpus": 9}}, "resources.gpus"),  # the largest region has 8
        ({"allowed_regions": ["eu-central"], "resources": {"gpus": 64}}, "resources.gpus"),
        ({"deadline": "2023-03-02T12:00:00"}, "deadline"),  # naive: no offset
        ({"deadline": "tomorrow"}, "deadline"),
        ({"resources": {"gpus": -1}}, "resources.gpus"),
        ({"unexpected": 1}, "unexpected"),
    ],
    ids=[
        "no-entrypoint",
        "blank-entrypoint",
        "zero-duration",
        "negative-duration",
        "deadline-before-now-plus-duration",
        "unknown-home",
        "unknown-allowed",
        "disallowed-home",
        "too-many-gpus",
        "too-many-gpus-in-allowed",
        "naive-deadline",
        "not-a-time",
        "negative-gpus",
        "unknown-field",
    ],
)
def test_bad_spec_is_a_422_naming_the_field(api: Api, body: dict[str, Any], field: str) -> None:
    response = api.http.post("/v1/jobs", json=job_body(**body), headers=api.as_(api.acme))
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, list)
    assert field in [field_of(item) for item in detail], detail
    assert all(item["msg"] for item in detail)
    # nothing was stored
    listed = api.http.get("/v1/jobs", headers=api.as_(api.acme)).json()
    assert listed["count"] == 0


def test_domain_and_schema_422s_share_one_shape(api: Api) -> None:
    schema_error = api.http.post(
        "/v1/jobs", json=job_body(entrypoint=None), headers=api.as_(api.acme)
    ).json()["detail"][0]
    domain_error = api.http.post(
        "/v1/jobs", json=job_body(home_region="atlantis"), headers=api.as_(api.acme)
    ).json()["detail"][0]
    assert set(domain_error) >= {"loc", "msg", "type"}
    assert domain_error["loc"][0] == schema_error["loc"][0] == "body"
    assert domain_error["type"] == "invalid_job_spec"
    assert "atlantis" in domain_error["msg"]


def test_tenant_field_is_for_admins(api: Api) -> None:
    denied = api.http.post("/v1/jobs", json=job_body(tenant="globex"), headers=api.as_(api.acme))
    assert denied.status_code == 403
    assert "globex" in denied.json()["detail"]
    job = api.submit(api.admin, tenant="globex")
    assert job["tenant"] == "globex"
    own = api.submit(api.acme, tenant="acme")
    assert own["tenant"] == "acme"


# --- auth ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/jobs"),
        ("POST", "/v1/jobs"),
        ("GET", "/v1/jobs/x"),
        ("GET", "/v1/regions"),
        ("GET", "/v1/forecasts/eu-central"),
        ("GET", "/v1/reports/savings"),
        ("POST", "/v1/tokens"),
        ("GET", "/metrics"),
        ("POST", "/v1/jobs/x/energy"),
    ],
)
def test_every_endpoint_needs_a_token(api: Api, method: str, path: str) -> None:
    response = api.http.request(method, path, json={})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert "bearer token" in response.json()["detail"]


def test_unknown_and_malformed_tokens_are_401(api: Api) -> None:
    for headers in (
        {"Authorization": "Bearer glt_not-a-token"},
        {"Authorization": f"Basic {api.acme}"},
        {"Authorization": "Bearer "},
    ):
        response = api.http.get("/v1/jobs", headers=headers)
        assert response.status_code == 401, headers
        assert response.json()["detail"]


def test_another_tenants_job_is_not_found(api: Api) -> None:
    job = api.submit(api.acme)
    for method, suffix in (("GET", ""), ("GET", "/events"), ("GET", "/logs"), ("POST", "/cancel")):
        response = api.http.request(
            method, f"/v1/jobs/{job['id']}{suffix}", headers=api.as_(api.globex)
        )
        assert response.status_code == 404, suffix
        assert job["id"] in response.json()["detail"]
    assert api.http.get(f"/v1/jobs/{job['id']}", headers=api.as_(api.admin)).status_code == 200
    still = api.http.get(f"/v1/jobs/{job['id']}", headers=api.as_(api.acme)).json()
    assert still["state"] != "cancelled"


def test_users_list_only_their_tenant(api: Api) -> None:
    api.submit(api.acme)
    api.submit(api.globex)
    mine = api.http.get("/v1/jobs", headers=api.as_(api.globex)).json()
    assert [j["tenant"] for j in mine["data"]] == ["globex"]
    other = api.http.get("/v1/jobs", params={"tenant": "acme"}, headers=api.as_(api.globex))
    assert other.status_code == 403
    everyone = api.http.get("/v1/jobs", headers=api.as_(api.admin)).json()
    assert everyone["count"] == 2


def test_token_creation_is_admin_only_and_shows_the_secret_once(api: Api) -> None:
    denied = api.http.post("/v1/tokens", json={"tenant": "acme"}, headers=api.as_(api.acme))
    assert denied.status_code == 403
    created = api.http.post(
        "/v1/tokens", json={"tenant": "initech", "name": "ci"}, headers=api.as_(api.admin)
    )
    assert created.status_code == 201
    body = created.json()
    assert body["role"] == "user"
    assert body["tenant"] == "initech"
    job = api.submit(body["token"])
    assert job["tenant"] == "initech"
    bad = api.http.post(
        "/v1/tokens", json={"tenant": "x", "role": "root"}, headers=api.as_(api.admin)
    )
    assert bad.status_code == 422
    assert "role" in [field_of(i) for i in bad.json()["detail"]]


# --- list, cancel, events -----------------------------------------------------------------


def test_pagination_pages_are_disjoint_and_newest_first(api: Api) -> None:
    ids = []
    for i in range(5):
        ids.append(api.submit(api.acme, name=f"job-{i}")["id"])
        api.clock.advance(60)
    api.submit(api.globex)
    pages = [
        api.http.get(
            "/v1/jobs", params={"limit": 2, "offset": offset}, headers=api.as_(api.acme)
        ).json()
        for offset in (0, 2, 4)
    ]
    assert [p["count"] for p in pages] == [5, 5, 5]
    assert [len(p["data"]) for p in pages] == [2, 2, 1]
    assert [(p["limit"], p["offset"]) for p in pages] == [(2, 0), (2, 2), (2, 4)]
    seen = [j["id"] for p in pages for j in p["data"]]
    assert seen == list(reversed(ids))


def test_filters_by_state_kind_and_tenant(api: Api) -> None:
    first = api.submit(api.acme)
    api.submit(api.acme)
    api.submit(
        api.acme,
        kind="deployment",
        expected_duration_s=None,
        max_delay_s=None,
        entrypoint="python serve.py",
    )
    api.submit(api.globex)
    api.http.post(f"/v1/jobs/{first['id']}/cancel", headers=api.as_(api.acme))

    def count(secret: str, **params: Any) -> int:
        response = api.http.get("/v1/jobs", params=params, headers=api.as_(secret))
        assert response.status_code == 200, response.text
        return int(response.json()["count"])

    assert count(api.acme, state="cancelled") == 1
    assert count(api.acme, kind="deployment") == 1
    assert count(api.acme, kind="training") == 2
    assert count(api.admin, tenant="globex") == 1
    assert count(api.admin) == 4
    assert count(api.admin, tenant="acme", state="cancelled", kind="training") == 1


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 100_000}, "limit"),
        ({"offset": -1}, "offset"),
        ({"state": "sleeping"}, "state"),
        ({"kind": "batch"}, "kind"),
    ],
)
def test_bad_list_parameters_are_422_naming_them(
    api: Api,
    params: dict[str, Any],
    field: str,
) -> None:
    response = api.http.get("/v1/jobs", params=params, headers=api.as_(api.acme))
    assert response.status_code == 422
    assert [item["loc"] for item in response.json()["detail"]] == [["query", field]]


def test_cancel_twice_is_a_409(api: Api) -> None:
    job = api.submit(api.acme)
    first = api.http.post(f"/v1/jobs/{job['id']}/cancel", headers=api.as_(api.acme))
    assert first.status_code == 200
    assert first.json()["state"] == "cancelled"
    second = api.http.post(f"/v1/jobs/{job['id']}/cancel", headers=api.as_(api.acme))
    assert second.status_code == 409
    assert "cancelled" in second.json()["detail"]
    events = api.http.get(f"/v1/jobs/{job['id']}/events", headers=api.as_(api.acme)).json()
    transitions = [e["to_state"] for e in events["data"] if e["kind"] == "state"]
    assert transitions[0] == "pending"
    assert transitions[-1] == "cancelled"
    assert transitions.count("cancelled") == 1
    assert all(e["at"].endswith("Z") for e in events["data"])


def test_unknown_job_is_404(api: Api) -> None:
    response = api.http.get("/v1/jobs/j-nope", headers=api.as_(api.admin))
    assert response.status_code == 404
    assert "j-nope" in response.json()["detail"]


def test_logs_before_dispatch_are_empty(api: Api) -> None:
    job = api.submit(api.acme)
    response = api.http.get(f"/v1/jobs/{job['id']}/logs", headers=api.as_(api.acme))
    assert response.json() == {"job_id": job["id"], "logs": ""}


# --- energy -------------------------------------------------------------------------------


def energy(
    start_min: int, *, device: str = "cpu:package-0", energy_j: float = 3600.0, attempt: int = 1
) -> dict[str, Any]:
    start = T0 + timedelta(minutes=start_min)
    return {
        "attempt": attempt,
        "node": "node-1",
        "device": device,
        "interval_start": start.isoformat(),
        "interval_end": (start + timedelta(minutes=1)).isoformat(),
        "energy_j": energy_j,
        "method": "rapl",
    }


def job_token(api: Api, job: dict[str, Any]) -> str:
    """A token for the job's current attempt (the one a worker gets by exchange)."""
    return api.service.create_token(tenant=job["tenant"], role=Role.JOB, job_id=job["id"])[0]


def dispatched(api: Api, secret: str | None = None) -> dict[str, Any]:
    """A job submitted to run now and claimed at T0 (attempt 1, as the dispatch cycle would);
    the clock then moves on ten minutes, so reports of its first minutes lie inside its run."""
    job = api.submit(secret or api.acme, max_delay_s=0)
    api.service.plan_cycle()  # what the arrival wakes
    claimed = api.service.ctx.store.claim_due(api.clock.now(), limit=100)
    assert job["id"] in [j.id for j in claimed]
    api.clock.advance(600)
    return job


def test_energy_reports_are_idempotent(api: Api) -> None:
    job = dispatched(api)
    token = job_token(api, job)
    url = f"/v1/jobs/{job['id']}/energy"
    first = api.http.post(url, json={"reports": [energy(0), energy(1)]}, headers=api.as_(token))
    assert first.status_code == 200
    assert first.json() == {"accepted": 2, "duplicates": 0}
    again = api.http.post(url, json={"reports": [energy(0), energy(1)]}, headers=api.as_(token))
    assert again.json() == {"accepted": 0, "duplicates": 2}
    mixed = api.http.post(
        url, json={"reports": [energy(1), energy(1, device="gpu:0")]}, headers=api.as_(token)
    )
    assert mixed.json() == {"accepted": 1, "duplicates": 1}
    stored = api.service.ctx.store.energy_reports([job["id"]])
    assert len(stored) == 3
    assert sum(r.energy_j for r in stored) == pytest.approx(3 * 3600.0)


def test_a_job_token_reports_only_for_its_own_job(api: Api) -> None:
    mine, other = dispatched(api), api.submit(api.acme)
    token = job_token(api, mine)
    body = {"reports": [energy(0)]}
    denied = api.http.post(f"/v1/jobs/{other['id']}/energy", json=body, headers=api.as_(token))
    assert denied.status_code == 403
    user = api.http.post(f"/v1/jobs/{mine['id']}/energy", json=body, headers=api.as_(api.acme))
    assert user.status_code == 403
    assert api.http.get("/v1/jobs", headers=api.as_(token)).status_code == 403
    assert api.http.post("/v1/jobs", json=job_body(), headers=api.as_(token)).status_code == 403
    ok = api.http.post(f"/v1/jobs/{mine['id']}/energy", json=body, headers=api.as_(token))
    assert ok.json() == {"accepted": 1, "duplicates": 0}
    assert api.service.ctx.store.energy_reports([other["id"]]) == []


@pytest.mark.parametrize(
    ("report", "field"),
    [
        ({"interval_start": "2023-03-01T06:00:00"}, "reports.0.interval_start"),
        ({"interval_end": "2023-03-01T05:00:00Z"}, "reports.0"),
        ({"energy_j": -1}, "reports.0.energy_j"),
        ({"method": "guess"}, "reports.0.method"),
    ],
)
def test_bad_energy_reports_are_422(api: Api, report: dict[str, Any], field: str) -> None:
    job = dispatched(api)
    bad = {**energy(0), **report}
    response = api.http.post(
        f"/v1/jobs/{job['id']}/energy",
        json={"reports": [bad]},
        headers=api.as_(job_token(api, job)),
    )
    assert response.status_code == 422
    assert field in [field_of(i) for i in response.json()["detail"]]


# --- regions, forecasts -------------------------------------------------------------------


def test_regions_list_the_configured_regions(api: Api) -> None:
    body = api.http.get("/v1/regions", headers=api.as_(api.acme)).json()
    by_name = {r["name"]: r for r in body["data"]}
    assert set(by_name) == {"eu-central", "eu-south", "us-west"}
    assert by_name["eu-central"]["grid_zone"] == "DE"
    assert by_name["eu-central"]["gpus"] == 8
    assert by_name["eu-central"]["stale"] is True  # nothing fetched yet
    assert by_name["eu-central"]["last_refresh"] is None


def test_forecast_pull_then_show(api: Api) -> None:
    assert api.http.post("/v1/forecasts/pull", headers=api.as_(api.acme)).status_code == 403
    pulled = api.http.post(
        "/v1/forecasts/pull", params={"region": "eu-central"}, headers=api.as_(api.admin)
    )
    assert pulled.status_code == 200
    assert pulled.json() == {"results": {"eu-central": "ok"}}
    body = api.http.get("/v1/forecasts/eu-central", headers=api.as_(api.acme)).json()
    assert body["region"] == "eu-central"
    assert body["grid_zone"] == "DE"
    assert body["stale"] is False
    assert body["age_s"] == pytest.approx(0.0)
    assert len(body["points"]) >= 24
    assert all(0 <= p["g_per_kwh"] <= 2000 for p in body["points"])
    assert body["issued_at"] == "2023-03-01T06:00:00Z"
    assert body["best_start"] is not None
    assert body["best_start"] < body["best_end"]
    regions = api.http.get("/v1/regions", headers=api.as_(api.acme)).json()["data"]
    assert {r["name"]: r["stale"] for r in regions}["eu-central"] is False


def test_unknown_region_is_404(api: Api) -> None:
    for path in ("/v1/forecasts/atlantis", "/v1/forecasts/atlantis/accuracy"):
        response = api.http.get(path, headers=api.as_(api.acme))
        assert response.status_code == 404
        assert "atlantis" in response.json()["detail"]
    pull = api.http.post(
        "/v1/forecasts/pull", params={"region": "atlantis"}, headers=api.as_(api.admin)
    )
    assert pull.status_code == 404


def test_forecast_accuracy_answers_a_list(api: Api) -> None:
    response = api.http.get("/v1/forecasts/eu-south/accuracy", headers=api.as_(api.acme))
    assert response.status_code == 200
    body = response.json()
    assert body["region"] == "eu-south"
    assert isinstance(body["data"], list)


# --- reports ------------------------------------------------------------------------------


def run_job(api: Api, secret: str, energy_j: float) -> dict[str, Any]:
    """Submit a job and take it through dispatch, run and success as the cycles would, with one
    energy report posted by its own token."""
    job = api.submit(secret, allowed_regions=["eu-central"])
    api.service.plan_cycle()  # what the arrival wakes
    store = api.service.ctx.store
    now = api.clock.now()
    claimed = store.claim_due(now, limit=100)
    assert job["id"] in [j.id for j in claimed]

    def event(target: JobState) -> JobEvent:
        return JobEvent(
            job_id=job["id"],
            at=api.clock.now(),
            kind="state",
            actor="test",
            reason="test",
            to_state=target,
        )

    store.transition(job["id"], JobState.RUNNING, event(JobState.RUNNING), started_at=now)
    api.clock.advance(1800)  # the worker reports as its run goes on
    report = {
        "attempt": 1,
        "node": "n1",
        "device": "cpu:package-0",
        "interval_start": now.isoformat(),
        "interval_end": (now + timedelta(minutes=30)).isoformat(),
        "energy_j": energy_j,
        "method": "rapl",
    }
    posted = api.http.post(
        f"/v1/jobs/{job['id']}/energy",
        json={"reports": [report]},
        headers=api.as_(job_token(api, job)),
    )
    assert posted.json()["accepted"] == 1
    store.transition(
        job["id"],
        JobState.SUCCEEDED,
        event(JobState.SUCCEEDED),
        finished_at=api.clock.now(),
        exit_code=0,
    )
    return job


def test_savings_report_is_per_tenant_for_users(api: Api) -> None:
    acme_job = run_job(api, api.acme, energy_j=3.6e6)  # 1 kWh
    globex_job = run_job(api, api.globex, energy_j=7.2e6)
    mine = api.http.get("/v1/reports/savings", headers=api.as_(api.acme))
    assert mine.status_code == 200, mine.text
    report = mine.json()
    assert [j["job_id"] for j in report["jobs"]] == [acme_job["id"]]
    assert report["skipped"] == []
    priced = report["jobs"][0]
    assert priced["energy_kwh"] == pytest.approx(1.0)
    assert priced["intensity_source"] == "actual"
    assert priced["emissions_g"] > 0
    assert report["total"]["jobs"] == 1
    assert report["by_tenant"][0]["key"] == "acme"
    assert report["period"] == "day"
    other = api.http.get(
        "/v1/reports/savings", params={"tenant": "globex"}, headers=api.as_(api.acme)
    )
    assert other.status_code == 403
    everyone = api.http.get("/v1/reports/savings", headers=api.as_(api.admin)).json()
    assert {j["job_id"] for j in everyone["jobs"]} == {acme_job["id"], globex_job["id"]}
    assert everyone["total"]["energy_kwh"] == pytest.approx(3.0)
    assert {g["key"] for g in everyone["by_tenant"]} == {"acme", "globex"}


def test_savings_report_formats(api: Api) -> None:
    job = run_job(api, api.acme, energy_j=3.6e6)
    headers = api.as_(api.acme)
    csv = api.http.get("/v1/reports/savings", params={"format": "csv"}, headers=headers)
    assert csv.headers["content-type"].startswith("text/csv")
    lines = csv.text.splitlines()
    assert lines[0].startswith("job_id,")
    assert any(line.startswith(job["id"]) for line in lines[1:])
    html = api.http.get("/v1/reports/savings", params={"format": "html"}, headers=headers)
    assert html.headers["content-type"].startswith("text/html")
    assert "<html" in html.text.lower()
    text = api.http.get("/v1/reports/savings", params={"format": "text"}, headers=headers)
    assert text.headers["content-type"].startswith("text/plain")
    assert job["id"] in text.text
    bad = api.http.get("/v1/reports/savings", params={"format": "pdf"}, headers=headers)
    assert bad.status_code == 422


def test_savings_report_rejects_naive_times_and_unknown_periods(api: Api) -> None:
    headers = api.as_(api.admin)
    naive = api.http.get(
        "/v1/reports/savings", params={"start": "2023-03-01T00:00:00"}, headers=headers
    )
    assert naive.status_code == 422
    assert [i["loc"] for i in naive.json()["detail"]] == [["query", "start"]]
    aware = api.http.get(
        "/v1/reports/savings",
        params={"start": "2023-03-01T00:00:00Z", "end": "2023-03-02T00:00:00Z"},
        headers=headers,
    )
    assert aware.status_code == 200
    assert aware.json()["start"].startswith("2023-03-01T00:00:00")
    period = api.http.get("/v1/reports/savings", params={"period": "fortnight"}, headers=headers)
    assert period.status_code in {400, 422}
    assert "period" in str(period.json()["detail"])


# --- operations ---------------------------------------------------------------------------


def test_healthz_needs_no_token_and_reports_staleness(api: Api) -> None:
    before = api.http.get("/healthz")
    assert before.status_code == 200
    assert before.json()["status"] == "degraded"
    assert before.json()["database"] == "ok"
    assert set(before.json()["stale_regions"]) == {"eu-central", "eu-south", "us-west"}
    api.service.pull_forecasts()
    after = api.http.get("/healthz")
    assert after.status_code == 200
    assert after.json()["status"] == "ok"


def test_metrics_count_requests_by_route_and_export_service_gauges(api: Api) -> None:
    job = api.submit(api.acme)
    api.http.get(f"/v1/jobs/{job['id']}", headers=api.as_(api.acme))
    api.http.get("/v1/jobs/j-missing", headers=api.as_(api.acme))
    assert api.http.get("/metrics", headers=api.as_(api.acme)).status_code == 403
    response = api.http.get("/metrics", headers=api.as_(api.admin))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'greenlight_http_requests_total{method="POST",route="/v1/jobs",status="201"} 1.0' in text
    assert (
        'greenlight_http_requests_total{method="GET",route="/v1/jobs/{job_id}",'
        'status="200"} 1.0' in text
    )
    assert (
        'greenlight_http_requests_total{method="GET",route="/v1/jobs/{job_id}",'
        'status="404"} 1.0' in text
    )
    assert "greenlight_http_request_duration_seconds_bucket" in text
    assert "greenlight_service_snapshot_up 1.0" in text
    state = job["state"]
    assert f'greenlight_jobs{{state="{state}"}} 1.0' in text


def test_openapi_docs_are_public_and_describe_bearer_auth(api: Api) -> None:
    docs = api.http.get("/docs")
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()
    spec = api.http.get("/openapi.json").json()
    for path in (
        "/v1/jobs",
        "/v1/jobs/{job_id}",
        "/v1/jobs/{job_id}/cancel",
        "/v1/jobs/{job_id}/events",
        "/v1/jobs/{job_id}/logs",
        "/v1/jobs/{job_id}/energy",
        "/v1/regions",
        "/v1/forecasts/{region}",
        "/v1/forecasts/{region}/accuracy",
        "/v1/forecasts/pull",
        "/v1/reports/savings",
        "/v1/tokens",
        "/healthz",
        "/metrics",
    ):
        assert path in spec["paths"], path
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert spec["paths"]["/v1/jobs"]["post"]["summary"]
    assert spec["paths"]["/v1/jobs"]["post"]["description"].startswith("Submit a job")


def test_unknown_route_is_a_json_404(api: Api) -> None:
    response = api.http.get("/v2/nothing", headers=api.as_(api.acme))
    assert response.status_code == 404
    assert response.json()["detail"]
