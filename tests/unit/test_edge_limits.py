"""The pure edge rules (issue 9): submit-time validation refuses every non-finite or
out-of-range number and unstorable text, whoever builds the spec; energy reports are bounded
per interval and never overlap per device."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scheduler.domain import (
    EnergyReport,
    InvalidJobSpec,
    JobKind,
    JobSpec,
    MeterMethod,
    Region,
    Resources,
)
from scheduler.domain.energy import (
    MAX_DEVICE_POWER_W,
    MAX_INTERVAL_S,
    EnergyConflict,
    new_reports,
    report_problem,
)
from scheduler.planning import validation as limits
from scheduler.planning.validation import runtime_env_problem, text_problem, validate_spec

NOW = datetime(2025, 6, 1, 12, tzinfo=UTC)
REGIONS = {"eu": Region(name="eu", grid_zone="DE", provider="replay", gpus=8)}


def _spec(**overrides: object) -> JobSpec:
    values: dict[str, object] = {
        "tenant": "acme",
        "name": "train",
        "kind": JobKind.TRAINING,
        "entrypoint": "python train.py",
        "home_region": "eu",
        "expected_duration_s": 3600.0,
        "max_delay_s": 3600.0,
    }
    values.update(overrides)
    return JobSpec(**values)  # type: ignore[arg-type]


_NUMBERS = st.floats(allow_nan=True, allow_infinity=True) | st.integers(-(2**70), 2**70)


@given(
    cpus=_NUMBERS,
    gpus=st.integers(-(2**70), 2**70),
    memory_mb=st.integers(-(2**70), 2**70),
    duration_s=_NUMBERS,
    delay_s=_NUMBERS,
    priority=st.integers(-(2**70), 2**70),
    retries=st.integers(-(2**70), 2**70),
    power_w=_NUMBERS,
)
def test_validation_passes_only_finite_numbers_within_the_limits(
    cpus: float,
    gpus: int,
    memory_mb: int,
    duration_s: float,
    delay_s: float,
    priority: int,
    retries: int,
    power_w: float,
) -> None:
    spec = _spec(
        resources=Resources(gpus=gpus, cpus=float(cpus), memory_mb=memory_mb),
        expected_duration_s=float(duration_s),
        max_delay_s=float(delay_s),
        priority=priority,
        max_retries=retries,
        expected_power_w=float(power_w),
    )
    try:
        checked = validate_spec(spec, REGIONS, NOW)
    except InvalidJobSpec:
        return
    res = checked.resources
    assert 0 <= res.gpus <= REGIONS["eu"].gpus
    assert math.isfinite(res.cpus) and 0 < res.cpus <= limits.MAX_CPUS  # noqa: PT018
    assert 0 <= res.memory_mb <= limits.MAX_MEMORY_MB
    assert checked.expected_duration_s is not None
    assert 0 < checked.expected_duration_s <= limits.MAX_DURATION_S
    assert checked.max_delay_s is not None
    assert 0 <= checked.max_delay_s <= limits.MAX_DELAY_S
    assert limits.MIN_PRIORITY <= checked.priority <= limits.MAX_PRIORITY
    assert 0 <= checked.max_retries <= limits.MAX_RETRIES
    assert checked.expected_power_w is not None
    assert 0 < checked.expected_power_w <= limits.MAX_POWER_W


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"name": "a\x00b"}, "name"),
        ({"entrypoint": "echo \ud800"}, "entrypoint"),
        ({"tenant": "ac\x00me"}, "tenant"),
        ({"entrypoint": "x" * (limits.MAX_ENTRYPOINT_CHARS + 1)}, "entrypoint"),
        ({"runtime_env": {"env_vars": {"K": "v\x00"}}}, "runtime_env.env_vars.K"),
        ({"runtime_env": {"x": float("nan")}}, "runtime_env.x"),
        ({"runtime_env": {"x": [1, 2**60]}}, "runtime_env.x[1]"),
        ({"runtime_env": {"env_vars": {"A=B": "v"}}}, "runtime_env.env_vars"),
        ({"deadline": NOW + timedelta(days=400)}, "deadline"),
        ({"allowed_regions": ("eu",) * 100}, "allowed_regions"),
    ],
)
def test_unstorable_text_and_oversized_values_name_their_field(
    overrides: dict[str, object], field: str
) -> None:
    with pytest.raises(InvalidJobSpec) as refused:
        validate_spec(_spec(**overrides), REGIONS, NOW)
    assert refused.value.field == field


def test_text_and_runtime_env_rules() -> None:
    assert text_problem("plain ✓ text") is None
    assert text_problem("nul\x00") == "must not contain NUL bytes"
    assert "surrogate" in (text_problem("\udc80") or "")
    assert runtime_env_problem({"env_vars": {"A": "1"}, "pip": ["torch"]}) is None
    nested: dict[str, object] = {}
    inner = nested
    for _ in range(limits.MAX_RUNTIME_ENV_DEPTH + 2):
        inner["x"] = {}
        inner = inner["x"]  # type: ignore[assignment]
    assert runtime_env_problem(nested) is not None
    big = {"blob": "x" * limits.MAX_RUNTIME_ENV_BYTES}
    found = runtime_env_problem(big)
    assert found is not None
    assert found[0] == "runtime_env"


# --- energy ----------------------------------------------------------------------------------

T0 = NOW


def _report(start_s: float, end_s: float, energy_j: float = 10.0, **kw: object) -> EnergyReport:
    values: dict[str, object] = {
        "job_id": "j1",
        "attempt": 1,
        "node": "n",
        "device": "gpu:0",
        "interval_start": T0 + timedelta(seconds=start_s),
        "interval_end": T0 + timedelta(seconds=end_s),
        "energy_j": energy_j,
        "method": MeterMethod.NVML_COUNTER,
    }
    values.update(kw)
    return EnergyReport(**values)  # type: ignore[arg-type]


def test_a_report_is_bounded_by_a_devices_power_over_its_interval() -> None:
    assert report_problem(_report(0, 60, MAX_DEVICE_POWER_W * 60)) is None
    assert report_problem(_report(0, 60, MAX_DEVICE_POWER_W * 60 * 1.001)) is not None
    assert report_problem(_report(0, 0, MAX_DEVICE_POWER_W)) is None  # at least one second
    for bad in (float("nan"), float("inf"), -1.0, 1e308):
        assert report_problem(_report(0, 60, bad)) is not None
    assert report_problem(_report(60, 0)) is not None
    assert report_problem(_report(0, MAX_INTERVAL_S + 1)) is not None


def test_new_reports_drop_exact_repeats_and_refuse_conflicts_and_overlaps() -> None:
    stored = [_report(0, 30), _report(30, 60)]
    assert new_reports(stored, [_report(0, 30), _report(60, 90)]) == [_report(60, 90)]
    assert new_reports(stored, [_report(60, 90), _report(60, 90)]) == [_report(60, 90)]
    with pytest.raises(EnergyConflict, match="different report"):
        new_reports(stored, [_report(0, 30, 11.0)])
    with pytest.raises(EnergyConflict, match="overlaps"):
        new_reports(stored, [_report(45, 75)])
    with pytest.raises(EnergyConflict, match="overlaps"):
        new_reports(stored, [_report(-10, 5)])
    with pytest.raises(EnergyConflict, match="overlaps"):
        new_reports([], [_report(0, 30), _report(29, 40)])
    # Other devices and attempts are other timelines.
    others = [_report(45, 75, device="cpu:package-0"), _report(45, 75, attempt=2)]
    assert new_reports(stored, others) == others


@given(
    st.lists(
        st.tuples(st.integers(0, 200), st.integers(0, 30), st.sampled_from(["gpu:0", "gpu:1"])),
        max_size=25,
    )
)
def test_accepted_intervals_never_overlap_per_device(spans: list[tuple[int, int, str]]) -> None:
    accepted: list[EnergyReport] = []
    for start, length, device in spans:
        candidate = _report(start, start + length, device=device)
        try:
            accepted += new_reports(accepted, [candidate])
        except EnergyConflict:
            continue
    for i, a in enumerate(accepted):
        for b in accepted[i + 1 :]:
            if a.device == b.device:
                assert a.interval_end <= b.interval_start or b.interval_end <= a.interval_start


def test_wall_clock_durations_scale_with_the_demo_clock() -> None:
    from scheduler.clock import ScaledClock, SystemClock
    from scheduler.service.energy import wall_duration

    assert wall_duration(SystemClock(), 600) == timedelta(seconds=600)
    started = SystemClock().now()  # as the demo anchors it: at start-up
    scaled = ScaledClock(anchor_wall=started, anchor=started, speed=900.0)
    # The runner's final flush takes wall seconds: at x900 that is 900x as much scheduler time.
    assert wall_duration(scaled, 600) == timedelta(seconds=600 * 900)
