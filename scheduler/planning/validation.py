"""Submit-time rules for a job spec: pure, ``now`` passed in. Raises InvalidJobSpec naming
the field."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from datetime import datetime, timedelta

from scheduler.domain import InvalidJobSpec, JobKind, JobSpec, Policy, Region

MAX_RETRIES = 20
# A training job's duration is bounded so a typo (ms for s) cannot block a region for years.
MAX_DURATION_S = 90 * 24 * 3600.0


def validate_spec(
    spec: JobSpec,
    regions: Mapping[str, Region],
    now: datetime,
    *,
    simulation: bool = False,
) -> JobSpec:
    """Check ``spec`` against the configured regions at ``now``; return it with defaults filled.

    Defaults: ``allowed_regions`` = every region. Raises InvalidJobSpec(field, message) for the
    first broken rule: empty name/entrypoint, non-positive or missing training duration, naive or
    too-early deadline, unknown regions, a home region outside the allowed ones (run-now there
    is the fallback of last resort), more GPUs than any allowed region has.
    """
    _check_text(spec)
    allowed = _check_regions(spec, regions)
    _check_resources(spec, {name: regions[name] for name in allowed})
    _check_timing(spec, now)
    if spec.policy is Policy.ORACLE and not simulation:
        raise InvalidJobSpec("policy", "'oracle' plans on actuals and exists only in simulation")
    if not 0 <= spec.max_retries <= MAX_RETRIES:
        raise InvalidJobSpec("max_retries", f"must be between 0 and {MAX_RETRIES}")
    return dataclasses.replace(spec, allowed_regions=allowed)


def _check_text(spec: JobSpec) -> None:
    if not spec.entrypoint.strip():
        raise InvalidJobSpec("entrypoint", "must be a non-empty shell command")
    if not spec.name.strip():
        raise InvalidJobSpec("name", "must not be empty")
    if not spec.tenant.strip():
        raise InvalidJobSpec("tenant", "must not be empty")


def _check_regions(spec: JobSpec, regions: Mapping[str, Region]) -> tuple[str, ...]:
    known = ", ".join(sorted(regions))
    for name in spec.allowed_regions:
        if name not in regions:
            raise InvalidJobSpec("allowed_regions", f"unknown region {name!r} (known: {known})")
    if spec.home_region not in regions:
        raise InvalidJobSpec("home_region", f"unknown region {spec.home_region!r} (known: {known})")
    allowed = tuple(dict.fromkeys(spec.allowed_regions)) or tuple(regions)
    if spec.home_region not in allowed:
        raise InvalidJobSpec(
            "home_region", f"region {spec.home_region!r} is not among allowed_regions {allowed}"
        )
    return allowed


def _check_resources(spec: JobSpec, allowed: Mapping[str, Region]) -> None:
    res = spec.resources
    if res.gpus < 0:
        raise InvalidJobSpec("resources.gpus", "must be >= 0")
    if not math.isfinite(res.cpus) or res.cpus <= 0:
        raise InvalidJobSpec("resources.cpus", "must be > 0")
    if res.memory_mb < 0:
        raise InvalidJobSpec("resources.memory_mb", "must be >= 0")
    most = max(r.gpus for r in allowed.values())
    if res.gpus > most:
        raise InvalidJobSpec(
            "resources.gpus", f"asks for {res.gpus} GPUs but the largest allowed region has {most}"
        )
    if spec.expected_power_w is not None and (
        not math.isfinite(spec.expected_power_w) or spec.expected_power_w <= 0
    ):
        raise InvalidJobSpec("expected_power_w", "must be > 0")


def _check_timing(spec: JobSpec, now: datetime) -> None:
    duration_s = spec.expected_duration_s
    if spec.kind is JobKind.TRAINING and duration_s is None:
        raise InvalidJobSpec("expected_duration_s", "is required for training jobs")
    if duration_s is not None and (not math.isfinite(duration_s) or duration_s <= 0):
        raise InvalidJobSpec("expected_duration_s", "must be > 0")
    if duration_s is not None and duration_s > MAX_DURATION_S:
        raise InvalidJobSpec("expected_duration_s", f"must be at most {MAX_DURATION_S:.0f} s")
    if spec.max_delay_s is not None and (
        not math.isfinite(spec.max_delay_s) or spec.max_delay_s < 0
    ):
        raise InvalidJobSpec("max_delay_s", "must be >= 0")
    if spec.deadline is not None:
        if spec.deadline.tzinfo is None:
            raise InvalidJobSpec("deadline", "must carry a timezone (UTC ISO-8601, e.g. ...Z)")
        earliest_end = now + timedelta(seconds=duration_s or 0.0)
        if spec.deadline < earliest_end:
            raise InvalidJobSpec(
                "deadline",
                f"{spec.deadline.isoformat()} is earlier than now + expected duration "
                f"({earliest_end.isoformat()})",
            )
