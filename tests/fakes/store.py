"""Builders of domain records for store tests: valid by default, any field overridable."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

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
    Plan,
    Policy,
    SeriesKind,
    Window,
)

T0 = datetime(2023, 3, 1, tzinfo=UTC)


def make_spec(**overrides: Any) -> JobSpec:
    values: dict[str, Any] = {
        "tenant": "acme",
        "name": "train",
        "kind": JobKind.TRAINING,
        "entrypoint": "python -m workers.examples.train_mlp --steps 10",
        "home_region": "eu-central",
        "expected_duration_s": 600.0,
        "max_delay_s": 3600.0,
    }
    values.update(overrides)
    return JobSpec(**values)


def make_job(job_id: str, *, created_at: datetime = T0, **overrides: Any) -> Job:
    """A pending job created at ``created_at``; ``spec=`` or any Job field overrides."""
    values: dict[str, Any] = {
        "id": job_id,
        "spec": make_spec(),
        "state": JobState.PENDING,
        "created_at": created_at,
        "updated_at": created_at,
    }
    values.update(overrides)
    return Job(**values)


def make_plan(
    start: datetime, *, region: str = "eu-central", duration_s: float = 600.0, **overrides: Any
) -> Plan:
    values: dict[str, Any] = {
        "region": region,
        "windows": (Window(region=region, start=start, end=start + timedelta(seconds=duration_s)),),
        "policy": Policy.GREENLIGHT,
        "planned_at": T0,
        "forecast_emissions_g": 12.5,
        "baseline_emissions_g": 20.0,
    }
    values.update(overrides)
    return Plan(**values)


def make_event(job_id: str, at: datetime = T0, **overrides: Any) -> JobEvent:
    values: dict[str, Any] = {
        "job_id": job_id,
        "at": at,
        "kind": "state",
        "actor": "test",
        "reason": "test",
    }
    values.update(overrides)
    return JobEvent(**values)


def make_series(
    zone: str,
    issued_at: datetime,
    values_g_per_kwh: list[float],
    *,
    start: datetime | None = None,
    resolution_s: int = 3600,
    kind: SeriesKind = SeriesKind.FORECAST,
    **overrides: Any,
) -> Forecast:
    """A series of hourly (by default) points from ``start`` (default ``issued_at``)."""
    first = start if start is not None else issued_at
    points = tuple(
        IntensityPoint(valid_at=first + timedelta(seconds=i * resolution_s), g_per_kwh=v)
        for i, v in enumerate(values_g_per_kwh)
    )
    fields: dict[str, Any] = {
        "zone": zone,
        "provider": "replay",
        "kind": kind,
        "issued_at": issued_at,
        "resolution_s": resolution_s,
        "points": points,
    }
    fields.update(overrides)
    return Forecast(**fields)


def make_report(
    job_id: str, interval_start: datetime, *, device: str = "gpu:0", **overrides: Any
) -> EnergyReport:
    values: dict[str, Any] = {
        "job_id": job_id,
        "attempt": 1,
        "node": "node-1",
        "device": device,
        "interval_start": interval_start,
        "interval_end": interval_start + timedelta(seconds=10),
        "energy_j": 1500.0,
        "method": MeterMethod.RAPL,
    }
    values.update(overrides)
    return EnergyReport(**values)
