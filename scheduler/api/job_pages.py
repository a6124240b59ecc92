"""``GET /v1/jobs`` pages serialized in one pass.

``JobPublic.of`` validates every field it was just handed from the store, and FastAPI then
validates the page again against the return type, dumps it to dicts and ``json.dumps`` them:
three passes over 50 jobs, most of a list request's CPU after the query (issue 8). Here each
job becomes the plain dict ``JobPublic`` dumps to, and pydantic-core serializes the page once
(``to_json``: the same datetime and number writers as the models), so a client reads the
page the validated models give (tests/unit/test_job_pages.py checks it field for field).
Enum members go in as their ``_value_`` (the plain string): ``to_json`` reads ``.value``, a
Python-level property, and that was a quarter of the page's serialization.
"""

from __future__ import annotations

from typing import Any

from pydantic_core import to_json

from scheduler.api.deployment_schemas import RelocationPublic
from scheduler.domain import Job, Plan


def page_json(
    jobs: list[Job],
    *,
    count: int | None,
    limit: int,
    offset: int,
    next_cursor: str | None,
    count_capped: bool,
) -> bytes:
    """The JSON of ``JobsPublic`` for ``jobs``, as the validated models would give it."""
    page = {
        "data": [job_public(j) for j in jobs],
        "count": count,
        "limit": limit,
        "offset": offset,
        "next_cursor": next_cursor,
        "count_capped": count_capped,
    }
    return to_json(page)


def job_public(job: Job) -> dict[str, Any]:
    """What ``JobPublic.of(job)`` dumps to, in its field order."""
    spec = job.spec
    res = spec.resources
    return {
        "id": job.id,
        "tenant": spec.tenant,
        "name": spec.name,
        "kind": spec.kind._value_,
        "entrypoint": spec.entrypoint,
        "home_region": spec.home_region,
        "runtime_env": spec.runtime_env,
        "resources": {"gpus": res.gpus, "cpus": float(res.cpus), "memory_mb": res.memory_mb},
        "expected_duration_s": _float(spec.expected_duration_s),
        "deadline": spec.deadline,
        "max_delay_s": _float(spec.max_delay_s),
        "allowed_regions": spec.allowed_regions,
        "interruptible": spec.interruptible,
        "priority": spec.priority,
        "max_retries": spec.max_retries,
        "policy": spec.policy._value_,
        "expected_power_w": _float(spec.expected_power_w),
        "state": job.state._value_,
        "attempt": job.attempt,
        "region": job.region,
        "created_at": job.created_at,
        "updated_at": job.updated_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "exit_code": job.exit_code,
        "message": job.message,
        "plan": None if job.plan is None else _plan(job.plan),
        "group_id": spec.group_id,
        "after": [{"job_id": d.job_id, "kind": d.kind._value_} for d in spec.after],
        "serve": None
        if spec.serve is None
        else {"import_path": spec.serve.import_path, "config": spec.serve.config},
        "endpoint": job.endpoint,
        "relocating_to": job.move.to_region if job.move is not None else None,
        # Rare (moved deployments) and small: the model, as JobPublic.of builds it.
        "relocations": [RelocationPublic.of(r).model_dump(mode="json") for r in job.relocations],
        "functional_units": None,
    }


def _float(value: float | None) -> float | None:
    # A float field dumps an int as a float (3600 -> 3600.0).
    return None if value is None else float(value)


def _plan(plan: Plan) -> dict[str, Any]:
    return {
        "region": plan.region,
        "planned_start": plan.start,
        "planned_end": plan.end,
        "windows": [{"region": w.region, "start": w.start, "end": w.end} for w in plan.windows],
        "forecast_emissions_g": float(plan.forecast_emissions_g),
        "baseline_emissions_g": float(plan.baseline_emissions_g),
        "expected_saving_g": float(plan.baseline_emissions_g - plan.forecast_emissions_g),
        "policy": plan.policy._value_,
        "planned_at": plan.planned_at,
        "forecast_issued_at": plan.forecast_issued_at,
        "note": plan.note,
    }
