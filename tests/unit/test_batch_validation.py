"""The batch path's shortcuts decide exactly as the per-job rules they stand for.

* ``SpecChecker.allowed_regions`` (shape checked once per distinct set of shared fields)
  raises and returns what ``validate_spec`` does, spec by spec, including messages that print
  a field (``2`` vs ``2.0`` GPUs, a deadline's offset).
* ``runtime_env_problem``'s size bound answers as the exact walk and encoding.
* ``pending_job_values`` is ``job_values`` of the pending ``Job`` it stands for.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from scheduler.domain import (
    InvalidJobSpec,
    Job,
    JobKind,
    JobSpec,
    JobState,
    Policy,
    Region,
    Resources,
)
from scheduler.domain.jobs import Dependency
from scheduler.domain.submission import PendingJob
from scheduler.planning import validation
from scheduler.planning.validation import SpecChecker, runtime_env_problem, validate_spec
from scheduler.store.rows import job_values, pending_job_values

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
REGIONS = {
    name: Region(name=name, grid_zone=name.upper(), provider="replay", gpus=gpus)
    for name, gpus in (("eu", 8), ("us", 16))
}
BASE = JobSpec(
    tenant="acme",
    name="sweep",
    kind=JobKind.TRAINING,
    entrypoint="python train.py",
    home_region="eu",
    expected_duration_s=3600.0,
    max_delay_s=7200.0,
)


def variants() -> list[JobSpec]:
    """Specs that share shapes, differ in one field, or differ only in how a field prints."""
    r = dataclasses.replace
    out = [r(BASE, name=f"sweep-{i}", runtime_env={"env_vars": {"SEED": str(i)}}) for i in range(5)]
    out += [
        r(BASE, name=" "),
        r(BASE, name="a\x00b"),
        r(BASE, home_region="mars"),
        r(BASE, allowed_regions=("us",)),
        r(BASE, allowed_regions=("us", "eu")),
        r(BASE, resources=Resources(gpus=20)),
        r(BASE, resources=Resources(gpus=20.0)),
        r(BASE, resources=Resources(gpus=0.5)),
        r(BASE, resources=Resources(gpus=0.5), kind=JobKind.DEPLOYMENT),
        r(BASE, resources=Resources(cpus=0.0)),
        r(BASE, expected_duration_s=None),
        r(BASE, expected_duration_s=-1.0),
        r(BASE, deadline=NOW + timedelta(minutes=10)),
        r(BASE, deadline=(NOW + timedelta(minutes=10)).astimezone(timezone(timedelta(hours=2)))),
        r(BASE, deadline=NOW + timedelta(hours=3)),
        r(BASE, deadline=datetime(2026, 3, 2)),
        r(BASE, policy=Policy.ORACLE),
        r(BASE, max_retries=99),
        r(BASE, priority=10**9),
        r(BASE, expected_power_w=0.0),
        r(BASE, runtime_env={"env_vars": {"A=B": "x"}}),
        r(BASE, runtime_env={"env_vars": {"A": float("nan")}}),
        r(BASE, after=(Dependency(job_id="j-1"),)),
        r(BASE, group_id="g-1"),
    ]
    return out + out  # each shape again: the second time it comes from the memo


def outcome(call: Any) -> Any:
    try:
        return call()
    except InvalidJobSpec as e:
        return ("refused", e.field, e.message)


def test_the_checker_answers_as_validate_spec_for_every_spec_in_order() -> None:
    checker = SpecChecker(REGIONS, NOW)
    for spec in variants():
        expected = outcome(lambda s=spec: validate_spec(s, REGIONS, NOW).allowed_regions)
        assert outcome(lambda s=spec: checker.allowed_regions(s)) == expected, spec


RUNTIME_ENVS: list[Any] = [
    {},
    {"env_vars": {"SEED": "1", "LR": "0.1"}},
    {"env_vars": {"A": 1, "B": 2.5, "C": True}},
    {"working_dir": "s3://bucket/x", "pip": ["torch==2.1", "numpy"], "config": {"a": None}},
    {"env_vars": {"X": "é"}},  # not ASCII: the exact path
    {"env_vars": {"X": "a\x00"}},
    {"env_vars": {"X": "\ud800"}},
    {"a": float("inf")},
    {"a": 2**60},
    {"a": (1, 2)},
    {"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": {"i": 1}}}}}}}}},
    {"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": 1}}}}}}}},
    {"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": {"i": "deep"}}}}}}}}},
    {"big": "x" * 70_000},
    {"big": "\x01" * 11_000},  # 6 bytes each as JSON: over the limit
    {"big": "\x01" * 10_000},
    {"k" * 100: ["\n"] * 100},
    {1: "x"},
    {"env_vars": ["A"]},
    {"env_vars": {"": "x"}},
    {"env_vars": {"A": ["x"]}},
]


def exact(runtime_env: Any) -> Any:
    """The rule without the bound: the walk, then the size of the encoding, then env_vars."""
    found = validation.json_problem(runtime_env, "runtime_env")
    if found:
        return found
    size_b = len(json.dumps(runtime_env, separators=(",", ":")).encode("utf-8"))
    if size_b > validation.MAX_RUNTIME_ENV_BYTES:
        return "size", size_b
    return "fits"


@pytest.mark.parametrize("runtime_env", RUNTIME_ENVS, ids=range(len(RUNTIME_ENVS)))
def test_the_size_bound_never_passes_what_the_exact_check_refuses(runtime_env: Any) -> None:
    found = runtime_env_problem(runtime_env)
    expected = exact(runtime_env)
    if expected == "fits":
        assert found is None or found[0].startswith("runtime_env.env_vars")
    elif expected[0] == "size":
        assert found == (
            "runtime_env",
            f"is {expected[1]} bytes as JSON; the limit is {validation.MAX_RUNTIME_ENV_BYTES}",
        )
    else:
        assert found == expected


def test_pending_rows_are_the_rows_of_the_pending_job() -> None:
    spec = dataclasses.replace(
        BASE,
        runtime_env={"env_vars": {"SEED": "3"}},
        after=(Dependency(job_id="j-0"),),
        allowed_regions=(),
        group_id=None,
    )
    new = PendingJob(
        id="j-1", spec=spec, allowed_regions=("eu", "us"), expected_power_w=310.0, group_id="g"
    )
    job = Job(
        id="j-1",
        spec=dataclasses.replace(
            spec, allowed_regions=("eu", "us"), expected_power_w=310.0, group_id="g"
        ),
        state=JobState.PENDING,
        created_at=NOW,
        updated_at=NOW,
    )
    assert pending_job_values(new, NOW) == job_values(job)
