"""``POST /v1/jobs/batch`` parses its body from bytes in one pass: every body it refuses
answers exactly as FastAPI's own parsing of ``body: JobsCreate`` does (a reference route with
the same error handlers, side by side), and a 10,000-job sweep goes in whole and in order."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from scheduler.api.app import create_app
from scheduler.api.errors import install_error_handlers
from scheduler.api.schemas import JobsCreate
from scheduler.bootstrap import build_service
from scheduler.config import load_settings
from scheduler.domain import Role

GOOD = {"name": "t", "entrypoint": "python x", "home_region": "eu-central"}
JSON = {"Content-Type": "application/json"}


def raw(text: str) -> dict[str, Any]:
    return {"content": text.encode(), "headers": JSON}


def one_job(**fields: str) -> dict[str, Any]:
    """A body of one job whose fields are written as raw JSON (NaN, 1e999, huge ints)."""
    extra = "".join(f', "{k}": {v}' for k, v in fields.items())
    return raw(
        f'{{"jobs": [{{"name": "t", "entrypoint": "x", "home_region": "eu-central"{extra}}}]}}'
    )


def job(**fields: Any) -> dict[str, Any]:
    return {**GOOD, "expected_duration_s": 3600, **fields}


BODIES: dict[str, dict[str, Any]] = {
    "empty": {"content": b"", "headers": JSON},
    "empty, no content type": {"content": b""},
    "not JSON": raw("{nope"),
    "trailing text": raw(json.dumps({"jobs": [job()]}) + " x"),
    "not UTF-8": {"content": b'{"jobs": ["\xff"]}', "headers": JSON},
    "UTF-8 BOM": {"content": b"\xef\xbb\xbf" + json.dumps({"jobs": [job()]}).encode()},
    "text/plain": {
        "content": json.dumps({"jobs": [job()]}).encode(),
        "headers": {"Content-Type": "text/plain"},
    },
    "a list": {"json": [job()]},
    "no jobs": {"json": {}},
    "zero jobs": {"json": {"jobs": []}},
    "extra field": {"json": {"jobs": [job()], "x": 1}},
    "NaN": one_job(expected_duration_s="NaN"),
    "1e999": one_job(expected_duration_s="1e999"),
    "NUL": {"json": {"jobs": [job(name="a\x00b")]}},
    "lone surrogate": raw(
        '{"jobs": [{"name": "\\ud800", "entrypoint": "x", "home_region": "eu-central"}]}'
    ),
    "naive deadline": {"json": {"jobs": [job(deadline="2030-01-01T00:00:00")]}},
    "env name": {"json": {"jobs": [job(runtime_env={"env_vars": {"A=B": "x"}})]}},
    "env NaN": one_job(runtime_env='{"a": NaN}'),
    "huge int": one_job(runtime_env='{"a": 123456789012345678901234567890}'),
    "empty group": {"json": {"jobs": [job()], "group_id": ""}},
    "gpus": {"json": {"jobs": [job(), job(resources={"gpus": 9999})]}},
    "10,001 jobs": {"json": {"jobs": [job()] * 10_001}},
}


@pytest.fixture
def clients(sqlite_url: str) -> Iterator[tuple[TestClient, TestClient, dict[str, str]]]:
    service = build_service(load_settings(database_url=sqlite_url))
    token = service.create_token(tenant="acme", role=Role.USER)[0]
    reference = FastAPI()
    install_error_handlers(reference)

    @reference.post("/v1/jobs/batch", status_code=201)
    def parse_only(body: JobsCreate) -> dict[str, int]:
        return {"count": len(body.jobs)}

    with TestClient(create_app(service)) as real, TestClient(reference) as ref:
        yield real, ref, {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize("case", list(BODIES))
def test_a_refused_body_answers_as_fastapi_parsing_it(
    clients: tuple[TestClient, TestClient, dict[str, str]], case: str
) -> None:
    real, ref, auth = clients
    kwargs = dict(BODIES[case])
    headers = {**kwargs.pop("headers", {}), **auth}
    expected = ref.post("/v1/jobs/batch", headers=headers, **kwargs)
    got = real.post("/v1/jobs/batch", headers=headers, **kwargs)
    if expected.status_code == 201:  # accepted by both parsers: the real route stores it
        assert got.status_code == 201, got.text
        assert got.json()["count"] == expected.json()["count"]
    else:
        assert (got.status_code, got.json()) == (expected.status_code, expected.json())


def test_a_sweep_of_10000_goes_in_whole_and_in_order(
    clients: tuple[TestClient, TestClient, dict[str, str]],
) -> None:
    real, _, auth = clients
    jobs = [job(name=f"s-{i}", runtime_env={"env_vars": {"SEED": str(i)}}) for i in range(10_000)]
    response = real.post("/v1/jobs/batch", json={"jobs": jobs, "group_id": "sweep"}, headers=auth)
    assert response.status_code == 201, response.text[:500]
    created = response.json()
    assert (created["count"], created["group_id"], len(set(created["ids"]))) == (
        10_000,
        "sweep",
        10_000,
    )
    page = real.get("/v1/jobs", params={"group_id": "sweep", "limit": 1000}, headers=auth).json()
    by_id = {j["id"]: j for j in page["data"]}
    for i in (0, 4_999, 9_999):
        one = real.get(f"/v1/jobs/{created['ids'][i]}", headers=auth).json()
        assert (one["name"], one["runtime_env"]) == (f"s-{i}", {"env_vars": {"SEED": str(i)}})
        assert one["allowed_regions"]
        assert one["expected_power_w"] > 0
    assert all(j["state"] == "pending" for j in by_id.values())
