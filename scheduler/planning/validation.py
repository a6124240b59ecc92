"""Submit-time rules for a job spec: pure, ``now`` passed in. Raises InvalidJobSpec naming
the field.

The limits below are the documented bounds of a job spec; the API schemas enforce the same
constants at the edge, and this module enforces them again so the planner and the report never
see a non-finite or absurd value, whoever builds the spec (API, simulator, tests).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from scheduler.domain import InvalidJobSpec, JobKind, JobSpec, Policy, Region
from scheduler.planning.serve_validation import check_serve

MAX_RETRIES = 20
# A training job's duration is bounded so a typo (ms for s) cannot block a region for years.
MAX_DURATION_S = 90 * 24 * 3600.0
MAX_DELAY_S = 366 * 24 * 3600.0
# A deadline further ahead than this is a typo, and would make planning horizons absurd.
MAX_DEADLINE_AHEAD_S = 366 * 24 * 3600.0
MAX_GPUS = 1024
# Ray counts fractional resources in units of 1/10,000 (scheduler.planning.packing).
GPU_SHARE_UNITS = 10_000
MAX_CPUS = 4096.0
MAX_MEMORY_MB = 64 * 1024 * 1024  # 64 TiB
MIN_PRIORITY, MAX_PRIORITY = -1_000_000, 1_000_000
MAX_POWER_W = 1_000_000.0  # a job's expected power: 1 MW
MAX_NAME_CHARS = 200
MAX_TENANT_CHARS = 128
MAX_REGION_CHARS = 64
MAX_ALLOWED_REGIONS = 64
# An entrypoint is one shell command line; Linux caps one argv string at 128 KiB, Ray's
# dashboard refuses large bodies, and anything this long belongs in a script file.
MAX_ENTRYPOINT_CHARS = 16_384
# runtime_env (env_vars, working_dir, pip, ...) as compact JSON, in UTF-8 bytes.
MAX_RUNTIME_ENV_BYTES = 65_536
MAX_ENV_VARS = 256
MAX_ENV_KEY_CHARS = 256
MAX_RUNTIME_ENV_DEPTH = 8
# Integers inside runtime_env must round-trip through every JSON parser (IEEE doubles).
MAX_JSON_INT = 2**53
# json.dumps(separators=...) builds an encoder per call; one shared encoder gives the same text.
_COMPACT_JSON = json.JSONEncoder(separators=(",", ":"))


def text_problem(value: str) -> str | None:
    """Why ``value`` cannot be stored or shown (NUL byte, unpaired surrogate), or None."""
    if "\x00" in value:
        return "must not contain NUL bytes"
    if value.isascii():  # no surrogate possible; skips encoding a copy (every text of a batch)
        return None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "must be valid Unicode text (no unpaired surrogates)"
    return None


def json_problem(value: Any, path: str, depth: int = 0) -> tuple[str, str] | None:
    """The first ``(field path, reason)`` that makes ``value`` unfit for a JSON column:
    non-finite or huge numbers, NUL bytes or unpaired surrogates in keys or strings, nesting
    deeper than MAX_RUNTIME_ENV_DEPTH, or non-JSON types. None when it is fine."""
    if depth > MAX_RUNTIME_ENV_DEPTH:
        return path, f"is nested deeper than {MAX_RUNTIME_ENV_DEPTH} levels"
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, str):
        reason = text_problem(value)
        return (path, reason) if reason else None
    if isinstance(value, int):
        return None if abs(value) <= MAX_JSON_INT else (path, "must be within ±2**53")
    if isinstance(value, float):
        return None if math.isfinite(value) else (path, "must be a finite number")
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                return path, "keys must be strings"
            reason = text_problem(key)
            if reason:
                return f"{path}.<key>", f"key {reason}"
            found = json_problem(item, f"{path}.{key}", depth + 1)
            if found:
                return found
        return None
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            found = json_problem(item, f"{path}[{i}]", depth + 1)
            if found:
                return found
        return None
    return path, f"holds a {type(value).__name__}, which is not JSON"


def _plain_json_bound(value: Any, depth: int) -> int:
    """An upper bound of ``value``'s size as compact JSON, in bytes, when it is plain JSON that
    ``json_problem`` passes (dicts and lists within the depth limit, ASCII text without NUL,
    finite floats, ints within ±2**53), else -1. The exact checks (a walk that names paths,
    an encoding) then run only for values this cannot vouch for: a runtime_env of a few
    variables costs a walk, not an encode (once per job of a batch)."""
    if depth > MAX_RUNTIME_ENV_DEPTH:
        return -1
    kind = type(value)
    if kind is str:
        # ensure_ascii: one character escapes to at most 6 bytes (\u00XX)
        return 6 * len(value) + 2 if value.isascii() and "\x00" not in value else -1
    if kind is dict:
        total = 2
        for key, item in value.items():
            k, v = _plain_json_bound(key, depth), _plain_json_bound(item, depth + 1)
            if k < 0 or v < 0 or type(key) is not str:
                return -1
            total += k + v + 2
        return total
    if kind is list:
        total = 2
        for item in value:
            v = _plain_json_bound(item, depth + 1)
            if v < 0:
                return -1
            total += v + 1
        return total
    if value is None or kind is bool:
        return 5
    if kind is int:
        return 17 if abs(value) <= MAX_JSON_INT else -1
    if kind is float:
        return 25 if math.isfinite(value) else -1
    return -1


def runtime_env_problem(runtime_env: Mapping[str, Any]) -> tuple[str, str] | None:
    """The first ``(field, reason)`` wrong with a runtime_env, or None: JSON-safe values, at
    most MAX_RUNTIME_ENV_BYTES as compact JSON, ``env_vars`` a mapping of at most MAX_ENV_VARS
    non-empty names (no ``=``) of at most MAX_ENV_KEY_CHARS to strings."""
    if not 0 <= _plain_json_bound(runtime_env, 0) <= MAX_RUNTIME_ENV_BYTES:
        found = json_problem(runtime_env, "runtime_env")
        if found:
            return found
        size_b = len(_COMPACT_JSON.encode(runtime_env).encode("utf-8"))
        if size_b > MAX_RUNTIME_ENV_BYTES:
            return "runtime_env", f"is {size_b} bytes as JSON; the limit is {MAX_RUNTIME_ENV_BYTES}"
    env_vars = runtime_env.get("env_vars", {})
    if not isinstance(env_vars, Mapping):
        return "runtime_env.env_vars", "must be an object of NAME: value strings"
    if len(env_vars) > MAX_ENV_VARS:
        return "runtime_env.env_vars", f"has more than {MAX_ENV_VARS} variables"
    for key, value in env_vars.items():
        if not key or "=" in key or len(key) > MAX_ENV_KEY_CHARS:
            return (
                "runtime_env.env_vars",
                f"names must be 1-{MAX_ENV_KEY_CHARS} characters without '='",
            )
        if not isinstance(value, str | int | float | bool):
            return f"runtime_env.env_vars.{key}", "must be a string"
    return None


def validate_spec(
    spec: JobSpec,
    regions: Mapping[str, Region],
    now: datetime,
    *,
    simulation: bool = False,
) -> JobSpec:
    """Check ``spec`` against the configured regions at ``now``; return it with defaults filled.

    Defaults: ``allowed_regions`` = every region. Raises InvalidJobSpec(field, message) for the
    first broken rule: empty, oversized or unprintable text (NUL, unpaired surrogates), a
    runtime_env over its limits, non-finite or out-of-range numbers (the MAX_* constants above),
    a missing training duration, a naive, too-early or too-far deadline, unknown regions, a home
    region outside the allowed ones (run-now there is the fallback of last resort), more GPUs
    than any allowed region has.
    """
    _check_text(spec)
    allowed = _check_shape(spec, regions, now, simulation)
    return dataclasses.replace(spec, allowed_regions=allowed)


def _check_shape(
    spec: JobSpec, regions: Mapping[str, Region], now: datetime, simulation: bool
) -> tuple[str, ...]:
    """Every rule but the per-job texts, in validate_spec's order; the allowed regions."""
    allowed = _check_regions(spec, regions)
    _check_resources(spec, {name: regions[name] for name in allowed})
    check_serve(spec)
    _check_timing(spec, now)
    if spec.policy is Policy.ORACLE and not simulation:
        raise InvalidJobSpec("policy", "'oracle' plans on actuals and exists only in simulation")
    if not 0 <= spec.max_retries <= MAX_RETRIES:
        raise InvalidJobSpec("max_retries", f"must be between 0 and {MAX_RETRIES}")
    if not MIN_PRIORITY <= spec.priority <= MAX_PRIORITY:
        raise InvalidJobSpec("priority", f"must be between {MIN_PRIORITY} and {MAX_PRIORITY}")
    return allowed


class SpecChecker:
    """``validate_spec`` for the many specs of one batch at one ``now``, without the copy:
    ``allowed_regions(spec)`` raises what ``validate_spec`` would and returns the regions it
    would fill in. The texts (name, entrypoint, runtime_env) are checked per spec; every other
    rule reads only fields a sweep's jobs share, so it runs once per distinct set of them."""

    def __init__(self, regions: Mapping[str, Region], now: datetime) -> None:
        self._regions = regions
        self._now = now
        self._shapes: dict[tuple[Any, ...], tuple[str, ...] | InvalidJobSpec] = {}

    def allowed_regions(self, spec: JobSpec) -> tuple[str, ...]:
        _check_text(spec)
        if spec.serve is not None:  # its config is per job: nothing to share
            return _check_shape(spec, self._regions, self._now, False)
        key = _shape_key(spec)
        found = self._shapes.get(key)
        if found is None:
            try:
                found = _check_shape(spec, self._regions, self._now, False)
            except InvalidJobSpec as e:
                found = e
            self._shapes[key] = found
        if isinstance(found, InvalidJobSpec):
            raise InvalidJobSpec(found.field, found.message)
        return found


def _shape_key(spec: JobSpec) -> tuple[Any, ...]:
    """Every field ``_check_shape`` reads, with its type: 2 and 2.0 are equal keys but read
    differently in a message ("asks for 2.0 GPUs"); a deadline by its text, as equal instants
    in other offsets print differently."""
    res = spec.resources
    deadline = spec.deadline
    return (
        spec.kind,
        spec.home_region,
        spec.allowed_regions,
        res.gpus,
        type(res.gpus),
        res.cpus,
        type(res.cpus),
        res.memory_mb,
        type(res.memory_mb),
        spec.expected_power_w,
        type(spec.expected_power_w),
        spec.expected_duration_s,
        type(spec.expected_duration_s),
        spec.max_delay_s,
        type(spec.max_delay_s),
        None if deadline is None else deadline.isoformat(),
        spec.policy,
        spec.max_retries,
        type(spec.max_retries),
        spec.priority,
        type(spec.priority),
    )


def _check_text(spec: JobSpec) -> None:
    limits = (
        ("entrypoint", spec.entrypoint, MAX_ENTRYPOINT_CHARS),
        ("name", spec.name, MAX_NAME_CHARS),
        ("tenant", spec.tenant, MAX_TENANT_CHARS),
        ("home_region", spec.home_region, MAX_REGION_CHARS),
    )
    for field, value, most in limits:
        if not value.strip():
            raise InvalidJobSpec(field, "must not be empty")
        if len(value) > most:
            raise InvalidJobSpec(field, f"must be at most {most} characters")
        reason = text_problem(value)
        if reason:
            raise InvalidJobSpec(field, reason)
    found = runtime_env_problem(spec.runtime_env)
    if found:
        raise InvalidJobSpec(*found)


def _check_regions(spec: JobSpec, regions: Mapping[str, Region]) -> tuple[str, ...]:
    if len(spec.allowed_regions) > MAX_ALLOWED_REGIONS:
        raise InvalidJobSpec("allowed_regions", f"must list at most {MAX_ALLOWED_REGIONS}")
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


def _check_gpu_share(spec: JobSpec) -> None:
    """Whole GPUs for every job; a share of one GPU for deployments only, in Ray's units of
    1/10,000. Training jobs take whole GPUs: the planner's exact solver counts whole GPUs, and a
    batch job sharing a GPU would slow its neighbours and blur whose energy the meter reads."""
    gpus = spec.resources.gpus
    if float(gpus).is_integer():
        return
    if gpus > 1:
        raise InvalidJobSpec(
            "resources.gpus", f"a count above 1 must be a whole number of GPUs, got {gpus:g}"
        )
    units = gpus * GPU_SHARE_UNITS
    if abs(units - round(units)) > 1e-6:
        raise InvalidJobSpec(
            "resources.gpus",
            f"a share of a GPU must be a multiple of 1/{GPU_SHARE_UNITS:,} (Ray's granularity), "
            f"got {gpus!r}",
        )
    if spec.kind is not JobKind.DEPLOYMENT:
        raise InvalidJobSpec(
            "resources.gpus",
            f"a share of a GPU ({gpus:g}) is for deployments only; training jobs take whole GPUs",
        )


def _check_resources(spec: JobSpec, allowed: Mapping[str, Region]) -> None:
    res = spec.resources
    if not (math.isfinite(res.gpus) and 0 <= res.gpus <= MAX_GPUS):
        raise InvalidJobSpec("resources.gpus", f"must be between 0 and {MAX_GPUS}")
    _check_gpu_share(spec)
    if not (math.isfinite(res.cpus) and 0 < res.cpus <= MAX_CPUS):
        raise InvalidJobSpec("resources.cpus", f"must be > 0 and at most {MAX_CPUS:g}")
    if not 0 <= res.memory_mb <= MAX_MEMORY_MB:
        raise InvalidJobSpec("resources.memory_mb", f"must be between 0 and {MAX_MEMORY_MB}")
    most = max(r.gpus for r in allowed.values())
    if res.gpus > most:
        raise InvalidJobSpec(
            "resources.gpus", f"asks for {res.gpus} GPUs but the largest allowed region has {most}"
        )
    if spec.expected_power_w is not None and not (
        math.isfinite(spec.expected_power_w) and 0 < spec.expected_power_w <= MAX_POWER_W
    ):
        raise InvalidJobSpec("expected_power_w", f"must be > 0 and at most {MAX_POWER_W:g} W")


def _check_timing(spec: JobSpec, now: datetime) -> None:
    duration_s = spec.expected_duration_s
    if spec.kind is JobKind.TRAINING and duration_s is None:
        raise InvalidJobSpec("expected_duration_s", "is required for training jobs")
    if duration_s is not None and (not math.isfinite(duration_s) or duration_s <= 0):
        raise InvalidJobSpec("expected_duration_s", "must be > 0")
    if duration_s is not None and duration_s > MAX_DURATION_S:
        raise InvalidJobSpec("expected_duration_s", f"must be at most {MAX_DURATION_S:.0f} s")
    if spec.max_delay_s is not None and not (
        math.isfinite(spec.max_delay_s) and 0 <= spec.max_delay_s <= MAX_DELAY_S
    ):
        raise InvalidJobSpec("max_delay_s", f"must be between 0 and {MAX_DELAY_S:.0f} s")
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
        if (spec.deadline - now).total_seconds() > MAX_DEADLINE_AHEAD_S:
            raise InvalidJobSpec(
                "deadline", f"must be at most {MAX_DEADLINE_AHEAD_S / 86400:.0f} days ahead"
            )
