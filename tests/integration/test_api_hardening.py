"""Issue 9, the edge: every number and string a tenant sends is bounded, every refusal is a 4xx
in the one error shape, energy reports are checked against their attempt's run, worker tokens
die with their attempt, and a database outage is a 503, not a 500.

Each class the issue lists has a regression test here (the exact value, and its neighbours),
and hypothesis throws arbitrary JSON at the job and energy schemas: never a 5xx.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scheduler.api.app import create_app
from scheduler.bootstrap import build_service
from scheduler.config import load_settings
from scheduler.domain import JobEvent, JobState, Role
from scheduler.domain.energy import ATTEMPT_GRACE_S, MAX_DEVICE_POWER_W
from scheduler.planning.validation import MAX_ENTRYPOINT_CHARS, MAX_RUNTIME_ENV_BYTES
from tests.fakes.clock import FakeClock
from tests.integration.test_api import T0, Api, dispatched, energy, field_of, job_body, job_token


@pytest.fixture
def api(sqlite_url: str) -> Iterator[Api]:
    clock = FakeClock(T0)
    service = build_service(load_settings(database_url=sqlite_url), clock=clock)
    tokens = {
        tenant: service.create_token(tenant=tenant, role=role)[0]
        for tenant, role in (("acme", Role.USER), ("globex", Role.USER), ("ops", Role.ADMIN))
    }
    # raise_server_exceptions=False: a bug must show as the 500 a client would see.
    with TestClient(create_app(service), raise_server_exceptions=False) as http:
        yield Api(
            http=http,
            service=service,
            clock=clock,
            acme=tokens["acme"],
            globex=tokens["globex"],
            admin=tokens["ops"],
        )


def post_raw(api: Api, path: str, text: str, secret: str) -> Any:
    """POST ``text`` as it is: Python's json would refuse to write NaN or a lone surrogate."""
    headers = {**api.as_(secret), "content-type": "application/json"}
    return api.http.post(path, content=text.encode("utf-8", "surrogatepass"), headers=headers)


def assert_refused(response: Any, status: int, field: str | None = None) -> dict[str, Any]:
    """The response is ``status`` in the one error shape, naming ``field`` for a 422."""
    assert response.status_code == status, response.text
    body: dict[str, Any] = json.loads(response.content)  # strict UTF-8, no NaN: it rendered
    assert set(body) == {"code", "detail"}
    if field is not None:
        assert field in [field_of(item) for item in body["detail"]], body
    return body


def submit_still_works(api: Api) -> None:
    """After any refusal, another tenant's ordinary submit is still a 201 and planned."""
    job = api.submit(api.globex)
    assert job["state"] in ("pending", "planned")


# --- numbers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fragment", "field"),
    [
        ('"resources": {"cpus": 1e308}', "resources.cpus"),
        ('"resources": {"gpus": 1e308}', "resources.gpus"),
        ('"resources": {"memory_mb": 4611686018427387904}', "resources.memory_mb"),  # 2**62
        ('"resources": {"gpus": 100000}', "resources.gpus"),
        ('"resources": {"cpus": NaN}', "resources.cpus"),
        ('"max_delay_s": 9e15', "max_delay_s"),
        ('"max_delay_s": Infinity', "max_delay_s"),
        ('"priority": 9223372036854775808', "priority"),  # 2**63
        ('"priority": -9223372036854775809', "priority"),
        ('"max_retries": 1000', "max_retries"),
        ('"expected_duration_s": 1e999', "expected_duration_s"),
        ('"expected_duration_s": -Infinity', "expected_duration_s"),
        ('"expected_power_w": 1e300', "expected_power_w"),
        ('"deadline": "9999-12-31T23:59:59Z"', "deadline"),
        ('"deadline": "1970-01-01T00:00:00Z"', "deadline"),
        ('"deadline": "2025-01-01T00:00:00Z"', "deadline"),  # over a year ahead of T0
        ('"runtime_env": {"x": NaN}', "runtime_env"),
        ('"runtime_env": {"x": 1e999}', "runtime_env"),
        ('"runtime_env": {"n": 123456789012345678901234567890}', "runtime_env"),
    ],
)
def test_out_of_range_and_non_finite_numbers_are_422(api: Api, fragment: str, field: str) -> None:
    text = json.dumps(job_body())[:-1] + ", " + fragment + "}"
    assert_refused(post_raw(api, "/v1/jobs", text, api.acme), 422, field)
    submit_still_works(api)


def test_huge_offsets_and_limits_are_422(api: Api) -> None:
    for query, field in (
        ("offset=9223372036854775808", "offset"),
        ("offset=99999999999999999999", "offset"),
        ("offset=-1", "offset"),
        ("limit=9223372036854775808", "limit"),
    ):
        response = api.http.get(f"/v1/jobs?{query}", headers=api.as_(api.acme))
        assert_refused(response, 422)
        assert response.json()["detail"][0]["loc"] == ["query", field]


# --- strings ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fragment", "field"),
    [
        ('"name": "a\\u0000b"', "name"),
        ('"entrypoint": "echo \\u0000"', "entrypoint"),
        ('"home_region": "eu\\u0000"', "home_region"),
        ('"tenant": "acme\\u0000"', "tenant"),
        ('"allowed_regions": ["eu-central\\u0000"]', "allowed_regions.0"),
        ('"runtime_env": {"env_vars": {"K\\u0000": "v"}}', "runtime_env"),
        ('"runtime_env": {"env_vars": {"K": "v\\u0000"}}', "runtime_env"),
        ('"name": "\\ud800"', "name"),
        ('"name": "x\\udfffy"', "name"),
        ('"entrypoint": "\\udc80"', "entrypoint"),
        ('"runtime_env": {"env_vars": {"\\ud800": "v"}}', "runtime_env"),
        ('"runtime_env": {"env_vars": {"K": "\\ud800"}}', "runtime_env"),
        ('"runtime_env": {"env_vars": {"A=B": "v"}}', "runtime_env"),
    ],
)
def test_nul_bytes_and_lone_surrogates_are_422_naming_the_field(
    api: Api, fragment: str, field: str
) -> None:
    text = json.dumps(job_body())[:-1] + ", " + fragment + "}"
    assert_refused(post_raw(api, "/v1/jobs", text, api.admin), 422, field)
    submit_still_works(api)


def test_nul_bytes_in_paths_and_queries_are_422(api: Api) -> None:
    headers = api.as_(api.admin)
    for path, loc in (
        ("/v1/jobs/j%00x", ["path", "job_id"]),
        ("/v1/jobs/j%00x/events", ["path", "job_id"]),
        ("/v1/jobs?tenant=ac%00me", ["query", "tenant"]),
        ("/v1/forecasts/eu%00", ["path", "region"]),
        ("/v1/reports/savings?region=eu%00", ["query", "region"]),
        ("/v1/tokens?tenant=%00", ["query", "tenant"]),
    ):
        response = api.http.get(path, headers=headers)
        assert_refused(response, 422)
        assert response.json()["detail"][0]["loc"] == loc, path
    # Invalid UTF-8 in a path is decoded with replacement characters: an unknown job, a 404.
    assert_refused(api.http.get("/v1/jobs/%ED%A0%80", headers=headers), 404)


def test_sizes_entrypoint_runtime_env_and_body(api: Api) -> None:
    long_entrypoint = job_body(entrypoint="x" * 200_000)
    assert_refused(
        api.http.post("/v1/jobs", json=long_entrypoint, headers=api.as_(api.acme)),
        422,
        "entrypoint",
    )
    at_limit = job_body(entrypoint="x" * MAX_ENTRYPOINT_CHARS)
    assert api.http.post("/v1/jobs", json=at_limit, headers=api.as_(api.acme)).status_code == 201
    fat_env = job_body(runtime_env={"env_vars": {"BLOB": "x" * MAX_RUNTIME_ENV_BYTES}})
    assert_refused(
        api.http.post("/v1/jobs", json=fat_env, headers=api.as_(api.acme)), 422, "runtime_env"
    )
    huge_env = job_body(runtime_env={"env_vars": {"BLOB": "x" * 10_000_000}})
    assert_refused(api.http.post("/v1/jobs", json=huge_env, headers=api.as_(api.acme)), 413)
    # Refused before authentication or parsing: the body is never read into a model.
    assert_refused(api.http.post("/v1/jobs", content=b"{" * 2_000_000), 413)
    listed = api.http.get("/v1/jobs", headers=api.as_(api.acme)).json()
    assert listed["count"] == 1  # only the job at the limit was stored


# --- energy ----------------------------------------------------------------------------------


def test_non_finite_energy_is_422_and_the_error_renders(api: Api) -> None:
    job = dispatched(api)
    url = f"/v1/jobs/{job['id']}/energy"
    good = json.dumps({"reports": [energy(0)]})
    for literal in ("NaN", "Infinity", "-Infinity", "1e999"):
        text = good.replace('"energy_j": 3600.0', f'"energy_j": {literal}')
        assert_refused(post_raw(api, url, text, job_token(api, job)), 422, "reports.0.energy_j")
    for bad in ('"device": "gpu\\u0000"', '"device": "\\ud800"', '"node": "n\\u0000"'):
        key = bad.split(":")[0]
        text = good.replace(f'{key}: "cpu:package-0"', bad).replace(f'{key}: "node-1"', bad)
        field = "reports.0." + key.strip('"')
        assert_refused(post_raw(api, url, text, job_token(api, job)), 422, field)
    assert api.service.ctx.store.energy_reports([job["id"]]) == []


def test_energy_beyond_a_devices_power_is_422(api: Api) -> None:
    job = dispatched(api)
    url = f"/v1/jobs/{job['id']}/energy"
    token = job_token(api, job)
    too_much = energy(0, energy_j=MAX_DEVICE_POWER_W * 60 * 1.01)  # a one-minute interval
    assert_refused(api.http.post(url, json={"reports": [too_much]}, headers=api.as_(token)), 422)
    for literal in (1e308, 1.7e308):
        big = energy(1, energy_j=literal)
        response = api.http.post(url, json={"reports": [big]}, headers=api.as_(token))
        assert_refused(response, 422)
    fine = energy(2, energy_j=MAX_DEVICE_POWER_W * 60 * 0.99)
    assert api.http.post(url, json={"reports": [fine]}, headers=api.as_(token)).status_code == 200


def test_savings_report_survives_attempts_at_1e308_joules(api: Api) -> None:
    job = dispatched(api)
    url = f"/v1/jobs/{job['id']}/energy"
    for minute in (0, 1):
        body = {"reports": [energy(minute, energy_j=1e308)]}
        for secret in (job_token(api, job), api.admin):
            assert api.http.post(url, json=body, headers=api.as_(secret)).status_code == 422
    for secret in (api.acme, api.admin):
        for fmt in ("json", "csv", "html", "text"):
            response = api.http.get(
                "/v1/reports/savings", params={"format": fmt}, headers=api.as_(secret)
            )
            assert response.status_code == 200, (fmt, response.text[:300])


@pytest.mark.parametrize(
    "start",
    [
        "1970-01-01T00:00:00Z",
        "9999-12-31T23:00:00Z",
        "2023-02-28T06:00:00Z",
        "2023-03-01T07:00:00Z",
    ],
)
def test_energy_outside_the_attempts_run_is_refused(api: Api, start: str) -> None:
    job = dispatched(api)  # dispatched at T0, now T0 + 10 min
    first = datetime.fromisoformat(start)
    report = {
        **energy(0),
        "interval_start": first.isoformat(),
        "interval_end": (first + timedelta(minutes=1)).isoformat(),
    }
    response = api.http.post(
        f"/v1/jobs/{job['id']}/energy",
        json={"reports": [report]},
        headers=api.as_(job_token(api, job)),
    )
    assert_refused(response, 422)
    assert api.service.ctx.store.energy_reports([job["id"]]) == []


def test_overlaps_and_conflicting_duplicates_are_409(api: Api) -> None:
    job = dispatched(api)
    url = f"/v1/jobs/{job['id']}/energy"
    headers = api.as_(job_token(api, job))
    assert api.http.post(url, json={"reports": [energy(0)]}, headers=headers).json() == {
        "accepted": 1,
        "duplicates": 0,
    }
    # An exact repeat is a duplicate (a retried POST), not a conflict.
    assert api.http.post(url, json={"reports": [energy(0)]}, headers=headers).json() == {
        "accepted": 0,
        "duplicates": 1,
    }
    conflicting = energy(0, energy_j=7200.0)
    assert_refused(api.http.post(url, json={"reports": [conflicting]}, headers=headers), 409)
    overlapping = {
        **energy(0),
        "interval_start": (T0 + timedelta(seconds=30)).isoformat(),
        "interval_end": (T0 + timedelta(seconds=90)).isoformat(),
    }
    body = {"reports": [energy(1), overlapping]}
    assert_refused(api.http.post(url, json=body, headers=headers), 409)
    # All or nothing: the good report in the refused batch was not stored either.
    assert len(api.service.ctx.store.energy_reports([job["id"]])) == 1
    # Another device has its own timeline.
    other = {**overlapping, "device": "gpu:0"}
    assert api.http.post(url, json={"reports": [other]}, headers=headers).status_code == 200


def _finish(api: Api, job: dict[str, Any], target: JobState) -> None:
    store = api.service.ctx.store
    current = JobState(store.get_job(job["id"]).state)
    store.transition(
        job["id"],
        target,
        JobEvent(
            job_id=job["id"],
            at=api.clock.now(),
            kind="state",
            actor="test",
            reason="test",
            to_state=target,
        ),
        expected_from=[current],
        finished_at=api.clock.now(),
    )


def test_nothing_is_accepted_after_the_attempts_grace(api: Api) -> None:
    job = dispatched(api)
    token = job_token(api, job)
    url = f"/v1/jobs/{job['id']}/energy"
    _finish(api, job, JobState.SUCCEEDED)  # at T0 + 10 min
    api.clock.advance(ATTEMPT_GRACE_S - 1)
    # Within the grace: the final report still arrives, and the token still reads its job.
    assert (
        api.http.post(url, json={"reports": [energy(9)]}, headers=api.as_(token)).status_code == 200
    )
    assert api.http.get(f"/v1/jobs/{job['id']}", headers=api.as_(token)).status_code == 200
    api.clock.advance(2)
    late = {"reports": [energy(8)]}
    assert_refused(api.http.post(url, json=late, headers=api.as_(token)), 401)
    assert_refused(api.http.get(f"/v1/jobs/{job['id']}", headers=api.as_(token)), 401)
    assert_refused(api.http.post(url, json=late, headers=api.as_(api.admin)), 409)


def test_a_cancelled_job_that_never_ran_gets_no_energy(api: Api) -> None:
    job = api.submit(api.acme)
    cancelled = api.http.post(f"/v1/jobs/{job['id']}/cancel", headers=api.as_(api.acme))
    assert cancelled.json()["state"] == "cancelled"
    url = f"/v1/jobs/{job['id']}/energy"
    assert_refused(
        api.http.post(url, json={"reports": [energy(0)]}, headers=api.as_(api.admin)), 409
    )
    # A job token minted for it is worth nothing: no attempt ever ran.
    token = job_token(api, job)
    assert_refused(api.http.post(url, json={"reports": [energy(0)]}, headers=api.as_(token)), 401)
    assert api.service.ctx.store.energy_reports([job["id"]]) == []


# --- worker tokens ---------------------------------------------------------------------------


def test_bootstrap_credential_is_exchanged_once_and_is_good_for_nothing_else(api: Api) -> None:
    from scheduler.service.tokens import issue_bootstrap

    job = dispatched(api)
    stored = api.service.ctx.store.get_job(job["id"])
    bootstrap = issue_bootstrap(api.service.ctx, stored)
    assert bootstrap.startswith("glb_")
    # Not a bearer token for anything but the exchange.
    assert_refused(api.http.get(f"/v1/jobs/{job['id']}", headers=api.as_(bootstrap)), 401)
    exchanged = api.http.post("/v1/tokens/exchange", headers=api.as_(bootstrap))
    assert exchanged.status_code == 201, exchanged.text
    token = exchanged.json()
    assert (token["role"], token["job_id"], token["attempt"]) == ("job", job["id"], 1)
    secret = token["token"]
    url = f"/v1/jobs/{job['id']}/energy"
    assert (
        api.http.post(url, json={"reports": [energy(0)]}, headers=api.as_(secret)).status_code
        == 200
    )
    # A second use means someone else had it: refused, and the attempt's tokens are revoked.
    assert_refused(api.http.post("/v1/tokens/exchange", headers=api.as_(bootstrap)), 401)
    assert_refused(api.http.post(url, json={"reports": [energy(1)]}, headers=api.as_(secret)), 401)
    # An attempt token reports for its own attempt only.
    fresh = job_token(api, job)
    other_attempt = {"reports": [energy(2, attempt=2)]}
    assert_refused(api.http.post(url, json=other_attempt, headers=api.as_(fresh)), 403)


def test_bootstrap_credential_expires(api: Api) -> None:
    from scheduler.service.tokens import BOOTSTRAP_MARGIN_S, issue_bootstrap

    job = dispatched(api)
    bootstrap = issue_bootstrap(api.service.ctx, api.service.ctx.store.get_job(job["id"]))
    api.clock.advance(api.service.ctx.config.pending_timeout_s + BOOTSTRAP_MARGIN_S + 1)
    assert_refused(api.http.post("/v1/tokens/exchange", headers=api.as_(bootstrap)), 401)
    assert_refused(api.http.post("/v1/tokens/exchange"), 401)


def test_tokens_are_listed_without_secrets_and_revocable(api: Api) -> None:
    listed = api.http.get("/v1/tokens", headers=api.as_(api.admin))
    assert listed.status_code == 200
    rows = listed.json()["data"]
    assert {r["role"] for r in rows} == {"user", "admin"}
    assert all("token" not in r and "token_hash" not in r for r in rows)
    assert api.acme not in listed.text
    assert_refused(api.http.get("/v1/tokens", headers=api.as_(api.acme)), 403)
    acme = next(r for r in rows if r["tenant"] == "acme")
    revoked = api.http.post(f"/v1/tokens/{acme['id']}/revoke", headers=api.as_(api.admin))
    assert revoked.json()["revoked"] is True
    assert_refused(api.http.get("/v1/jobs", headers=api.as_(api.acme)), 401)
    assert_refused(api.http.post("/v1/tokens/nope/revoke", headers=api.as_(api.admin)), 404)
    only_globex = api.http.get("/v1/tokens?tenant=globex", headers=api.as_(api.admin)).json()
    assert [r["tenant"] for r in only_globex["data"]] == ["globex"]


# --- database outage -------------------------------------------------------------------------


def test_database_down_is_503_with_retry_after_and_healthz_tells_no_secrets(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlalchemy as sa

    # A real unreachable database: a PostgreSQL URL on a port nothing listens on.
    dead = sa.create_engine(
        "postgresql+psycopg://greenlight:s3cret-password@127.0.0.1:9/greenlight",
        connect_args={"connect_timeout": 2},
    )
    monkeypatch.setattr(api.service.ctx.store, "_engine", dead)
    for method, path, body in (
        ("GET", "/v1/jobs", None),
        ("POST", "/v1/jobs", job_body()),
        ("GET", "/v1/regions", None),
    ):
        response = api.http.request(method, path, json=body, headers=api.as_(api.acme))
        assert_refused(response, 503)
        assert response.headers["Retry-After"].isdigit()
    health = api.http.get("/healthz")
    assert health.status_code == 503
    assert health.json()["database"] == "unreachable"
    assert "s3cret" not in health.text
    assert "127.0.0.1" not in health.text


# --- the OpenAPI document --------------------------------------------------------------------


def test_every_route_documents_its_errors_with_the_shared_schema(api: Api) -> None:
    spec = api.http.get("/openapi.json").json()
    assert "ErrorPublic" in spec["components"]["schemas"]
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            codes = set(operation["responses"])
            if path == "/healthz":
                assert "503" in codes
                continue
            if path.startswith("/dashboard"):
                continue
            assert "401" in codes, (method, path)
            for code in codes - {"200", "201"}:
                content = operation["responses"][code].get("content", {})
                ref = content.get("application/json", {}).get("schema", {}).get("$ref", "")
                assert ref.endswith("/ErrorPublic"), (method, path, code)
            if method == "post" and operation.get("requestBody"):
                assert "413" in codes, (method, path)
            if operation.get("parameters") or operation.get("requestBody"):
                assert "422" in codes, (method, path)


# --- properties ------------------------------------------------------------------------------

_JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=30)
)
_JSON = st.recursive(
    _JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
_FIELDS = st.sampled_from(
    [
        "name",
        "entrypoint",
        "home_region",
        "runtime_env",
        "resources",
        "expected_duration_s",
        "deadline",
        "max_delay_s",
        "allowed_regions",
        "priority",
        "max_retries",
        "expected_power_w",
        "tenant",
        "policy",
        "kind",
    ]
)


def _dump(value: Any) -> str:
    """JSON as a hostile client may write it: NaN literals and lone surrogates included."""
    return json.dumps(value, allow_nan=True, ensure_ascii=True)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(overrides=st.dictionaries(_FIELDS, _JSON, max_size=4))
def test_no_job_body_gets_a_5xx(api: Api, overrides: dict[str, Any]) -> None:
    body = {**job_body(), **overrides}
    response = post_raw(api, "/v1/jobs", _dump(body), api.admin)
    assert response.status_code in (201, 403, 422), response.text
    parsed = json.loads(response.content)
    if response.status_code == 201:
        # Whatever got in is plannable, finite and listable.
        assert parsed["state"] in ("planned", "pending")
        listed = api.http.get(f"/v1/jobs/{parsed['id']}", headers=api.as_(api.admin))
        assert listed.status_code == 200


_REPORT_FIELDS = st.sampled_from(
    ["attempt", "node", "device", "interval_start", "interval_end", "energy_j", "method"]
)


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    overrides=st.dictionaries(_REPORT_FIELDS, _JSON, max_size=3),
    joules=st.floats(allow_nan=True, allow_infinity=True),
)
def test_no_energy_report_gets_a_5xx(api: Api, overrides: dict[str, Any], joules: float) -> None:
    jobs, _ = api.service.ctx.store.list_jobs(limit=1)
    job_id = jobs[0].id if jobs else dispatched(api)["id"]
    report = {**energy(0, energy_j=joules), **overrides}
    response = post_raw(api, f"/v1/jobs/{job_id}/energy", _dump({"reports": [report]}), api.admin)
    assert response.status_code in (200, 409, 422), response.text
    json.loads(response.content)


def test_the_body_limit_is_configured(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GREENLIGHT_API_MAX_BODY_BYTES", "4096")
    settings = load_settings(database_url=sqlite_url)
    assert settings.api_max_body_bytes == 4096
    service = build_service(settings, clock=FakeClock(T0))
    secret, _ = service.create_token(tenant="acme", role=Role.USER)
    app = create_app(service, max_body_bytes=settings.api_max_body_bytes)
    with TestClient(app) as http:
        headers = {"Authorization": f"Bearer {secret}"}
        small = http.post("/v1/jobs", json=job_body(), headers=headers)
        assert small.status_code == 201
        big = http.post("/v1/jobs", json=job_body(name="x" * 5000), headers=headers)
        assert_refused(big, 413)
