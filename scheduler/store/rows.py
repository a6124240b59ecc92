"""Conversions between table rows and domain records. Rows never leave the store package."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.engine import RowMapping

from scheduler.domain import (
    ApiToken,
    EnergyReport,
    Job,
    JobEvent,
    JobKind,
    JobSpec,
    JobState,
    MeterMethod,
    Plan,
    Policy,
    Region,
    Resources,
    Role,
    Window,
)
from scheduler.domain.jobs import Dependency, DependencyKind
from scheduler.domain.serve import ServeApp
from scheduler.domain.submission import PendingJob
from scheduler.store.deployment_rows import move_from_document, relocations_from_documents
from scheduler.store.types import utc_iso

_iso = utc_iso


def _iso_or_none(value: datetime | None) -> str | None:
    return _iso(value) if value is not None else None


# Stored values to members by dictionary: ``Enum(value)`` goes through the metaclass's call
# and costs a third of turning 100,000 rows into jobs at a restart.
_KINDS = {k.value: k for k in JobKind}
_POLICIES = {p.value: p for p in Policy}
STATE_BY_VALUE = {s.value: s for s in JobState}


def _from_iso(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value is not None else None


def plan_values(plan: Plan | None) -> dict[str, Any]:
    """The ``jobs`` columns that hold ``plan`` (all None when there is no plan)."""
    if plan is None:
        return {"plan_region": None, "plan_start": None, "plan_end": None, "plan": None}
    document = {
        "windows": [
            {"region": w.region, "start": _iso(w.start), "end": _iso(w.end)} for w in plan.windows
        ],
        "policy": plan.policy.value,
        "planned_at": _iso(plan.planned_at),
        "forecast_emissions_g": plan.forecast_emissions_g,
        "baseline_emissions_g": plan.baseline_emissions_g,
        "forecast_issued_at": _iso_or_none(plan.forecast_issued_at),
        "note": plan.note,
    }
    return {
        "plan_region": plan.region,
        "plan_start": plan.start,
        "plan_end": plan.end,
        "plan": document,
    }


# The plan document's text as ``json.dumps(plan_values(plan)["plan"])`` writes it, built
# directly: the first cycle over a new queue writes 100,000 plans, and going through a dict and
# the encoder's generic walk cost a second of it.
_JSON_STRING = json.encoder.encode_basestring_ascii  # json.dumps's, ensure_ascii


def _json_number(value: float) -> str:
    if type(value) is float and math.isfinite(value):
        return float.__repr__(value)
    return json.dumps(value)


def plan_json(plan: Plan) -> str:
    """The ``plan`` column's JSON text for ``plan`` (equal to ``json.dumps`` of the document
    ``plan_values`` gives)."""
    windows = ", ".join(
        f'{{"region": {_JSON_STRING(w.region)}, "start": "{_iso(w.start)}", '
        f'"end": "{_iso(w.end)}"}}'
        for w in plan.windows
    )
    issued = "null" if plan.forecast_issued_at is None else f'"{_iso(plan.forecast_issued_at)}"'
    note = "null" if plan.note is None else _JSON_STRING(plan.note)
    return (
        f'{{"windows": [{windows}], "policy": {_JSON_STRING(plan.policy.value)}, '
        f'"planned_at": "{_iso(plan.planned_at)}", '
        f'"forecast_emissions_g": {_json_number(plan.forecast_emissions_g)}, '
        f'"baseline_emissions_g": {_json_number(plan.baseline_emissions_g)}, '
        f'"forecast_issued_at": {issued}, "note": {note}}}'
    )


def plan_from_row(row: RowMapping) -> Plan | None:
    document: Mapping[str, Any] | None = row["plan"]
    if document is None:
        return None
    windows = tuple(
        Window(
            region=w["region"],
            start=datetime.fromisoformat(w["start"]),
            end=datetime.fromisoformat(w["end"]),
        )
        for w in document["windows"]
    )
    return Plan(
        region=row["plan_region"],
        windows=windows,
        policy=_POLICIES[document["policy"]],
        planned_at=datetime.fromisoformat(document["planned_at"]),
        forecast_emissions_g=float(document["forecast_emissions_g"]),
        baseline_emissions_g=float(document["baseline_emissions_g"]),
        forecast_issued_at=_from_iso(document["forecast_issued_at"]),
        note=document["note"],
    )


def _spec_values(spec: JobSpec) -> dict[str, Any]:
    """The ``jobs`` columns a spec fills alike for a stored job and a just-submitted one
    (allowed regions, expected power and group are the callers': a submission resolves them)."""
    res = spec.resources
    return {
        "tenant": spec.tenant,
        "name": spec.name,
        "kind": spec.kind.value,
        "entrypoint": spec.entrypoint,
        "home_region": spec.home_region,
        "runtime_env": dict(spec.runtime_env),
        "gpus": res.gpus,
        "cpus": res.cpus,
        "memory_mb": res.memory_mb,
        "expected_duration_s": spec.expected_duration_s,
        "deadline": spec.deadline,
        "max_delay_s": spec.max_delay_s,
        "interruptible": spec.interruptible,
        "priority": spec.priority,
        "max_retries": spec.max_retries,
        "policy": spec.policy.value,
        "after": [{"job_id": d.job_id, "kind": d.kind.value} for d in spec.after] or None,
        "serve": {"import_path": spec.serve.import_path, "config": dict(spec.serve.config)}
        if spec.serve
        else None,
    }


def job_values(job: Job) -> dict[str, Any]:
    """Every ``jobs`` column for ``job``."""
    spec = job.spec
    return {
        "id": job.id,
        **_spec_values(spec),
        "allowed_regions": list(spec.allowed_regions),
        "expected_power_w": spec.expected_power_w,
        "group_id": spec.group_id,
        "state": job.state.value,
        "created_at": job.created_at,
        "updated_at": job.updated_at,
        "attempt": job.attempt,
        **plan_values(job.plan),
        "region": job.region,
        "submission_id": job.submission_id,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "exit_code": job.exit_code,
        "message": job.message,
    }


def pending_job_values(new: PendingJob, now: datetime) -> dict[str, Any]:
    """Every ``jobs`` column for a just-submitted job: ``job_values`` of the pending ``Job``
    it stands for, built without that ``Job``."""
    return {
        "id": new.id,
        **_spec_values(new.spec),
        "allowed_regions": list(new.allowed_regions),
        "expected_power_w": new.expected_power_w,
        "group_id": new.group_id,
        "state": JobState.PENDING.value,
        "created_at": now,
        "updated_at": now,
        "attempt": 0,
        **_NO_PLAN,
        "region": None,
        "submission_id": None,
        "started_at": None,
        "finished_at": None,
        "exit_code": None,
        "message": None,
    }


_NO_PLAN = plan_values(None)


def serve_from_document(document: Any) -> ServeApp | None:
    """A stored Serve application (``{"import_path", "config"}``), None for a plain entrypoint."""
    if not document:
        return None
    return ServeApp(import_path=document["import_path"], config=dict(document.get("config") or {}))


def gpu_count(value: float) -> float:
    """A stored GPU count as the spec had it: a whole count as ``int`` (the column is a float
    since shares of a GPU exist), a share as ``float``."""
    count = float(value)
    return int(count) if count.is_integer() else count


def job_from_row(row: RowMapping) -> Job:
    spec = JobSpec(
        tenant=row["tenant"],
        name=row["name"],
        kind=_KINDS[row["kind"]],
        entrypoint=row["entrypoint"],
        home_region=row["home_region"],
        runtime_env=dict(row["runtime_env"]),
        resources=Resources(
            gpus=gpu_count(row["gpus"]), cpus=float(row["cpus"]), memory_mb=row["memory_mb"]
        ),
        expected_duration_s=row["expected_duration_s"],
        deadline=row["deadline"],
        max_delay_s=row["max_delay_s"],
        allowed_regions=tuple(row["allowed_regions"]),
        interruptible=bool(row["interruptible"]),
        priority=row["priority"],
        max_retries=row["max_retries"],
        policy=_POLICIES[row["policy"]],
        expected_power_w=row["expected_power_w"],
        group_id=row.get("group_id"),
        after=tuple(
            Dependency(job_id=d["job_id"], kind=DependencyKind(d["kind"]))
            for d in row.get("after") or ()
        ),
        serve=serve_from_document(row.get("serve")),
    )
    return Job(
        id=row["id"],
        spec=spec,
        state=STATE_BY_VALUE[row["state"]],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        attempt=row["attempt"],
        plan=plan_from_row(row),
        region=row["region"],
        submission_id=row["submission_id"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        exit_code=row["exit_code"],
        message=row["message"],
        endpoint=row.get("endpoint"),
        endpoint_updated_at=row.get("endpoint_updated_at"),
        move=move_from_document(row.get("relocation")),
        moved_at=row.get("moved_at"),
        relocations=relocations_from_documents(row.get("relocations")),
        move_attempts=row.get("move_attempts") or 0,
    )


EVENT_COLUMNS = (
    "job_id",
    "at",
    "kind",
    "actor",
    "reason",
    "from_state",
    "to_state",
    "expected_emissions_g",
)


def event_values(event: JobEvent) -> dict[str, Any]:
    """``job_events`` columns for ``event``; its ``id`` is left to the database."""
    return dict(zip(EVENT_COLUMNS, event_row(event), strict=True))


def event_row(
    event: JobEvent, from_state: JobState | None = None, to_state: JobState | None = None
) -> tuple[Any, ...]:
    """``event``'s values in ``EVENT_COLUMNS`` order, its states replaced by ``from_state`` /
    ``to_state`` where given (a bulk write's COPY rows, without a copy of each event)."""
    before = from_state or event.from_state
    after = to_state or event.to_state
    return (
        event.job_id,
        event.at,
        event.kind,
        event.actor,
        event.reason,
        before.value if before is not None else None,
        after.value if after is not None else None,
        event.expected_emissions_g,
    )


def event_from_row(row: RowMapping) -> JobEvent:
    return JobEvent(
        id=row["id"],
        job_id=row["job_id"],
        at=row["at"],
        kind=row["kind"],
        actor=row["actor"],
        reason=row["reason"],
        from_state=JobState(row["from_state"]) if row["from_state"] is not None else None,
        to_state=JobState(row["to_state"]) if row["to_state"] is not None else None,
        expected_emissions_g=row["expected_emissions_g"],
    )


def energy_values(report: EnergyReport) -> dict[str, Any]:
    return {
        "job_id": report.job_id,
        "attempt": report.attempt,
        "node": report.node,
        "device": report.device,
        "interval_start": report.interval_start,
        "interval_end": report.interval_end,
        "energy_j": report.energy_j,
        "method": report.method.value,
    }


def energy_from_row(row: RowMapping) -> EnergyReport:
    return EnergyReport(
        job_id=row["job_id"],
        attempt=row["attempt"],
        node=row["node"],
        device=row["device"],
        interval_start=row["interval_start"],
        interval_end=row["interval_end"],
        energy_j=float(row["energy_j"]),
        method=MeterMethod(row["method"]),
    )


def token_values(token: ApiToken) -> dict[str, Any]:
    return {
        "id": token.id,
        "tenant": token.tenant,
        "role": token.role.value,
        "token_hash": token.token_hash,
        "created_at": token.created_at,
        "name": token.name,
        "job_id": token.job_id,
        "attempt": token.attempt,
        "expires_at": token.expires_at,
        "revoked": token.revoked,
    }


def token_from_row(row: RowMapping) -> ApiToken:
    return ApiToken(
        id=row["id"],
        tenant=row["tenant"],
        role=Role(row["role"]),
        token_hash=row["token_hash"],
        created_at=row["created_at"],
        name=row["name"],
        job_id=row["job_id"],
        attempt=row["attempt"],
        expires_at=row["expires_at"],
        revoked=bool(row["revoked"]),
    )


def region_values(region: Region) -> dict[str, Any]:
    return {
        "name": region.name,
        "grid_zone": region.grid_zone,
        "provider": region.provider,
        "gpus": region.gpus,
        "pue": region.pue,
        "ray_address": region.ray_address,
        "node_label": region.node_label,
    }


def region_from_row(row: RowMapping) -> Region:
    return Region(
        name=row["name"],
        grid_zone=row["grid_zone"],
        provider=row["provider"],
        gpus=row["gpus"],
        pue=float(row["pue"]),
        ray_address=row["ray_address"],
        node_label=row["node_label"],
    )
