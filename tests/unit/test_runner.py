"""The runner's pure parts: argument split, config from env, interval cutting, log format."""

from __future__ import annotations

import io
import json
import logging
from datetime import UTC, datetime, timedelta

import pytest

from workers.child import build_argv, exit_code_of
from workers.energy import EstimateMeter
from workers.intervals import IntervalCutter
from workers.jsonlog import configure_json_logging, get_logger, use_standard_logging
from workers.reporter import ApiTarget
from workers.runner import config_from, parse_args

ANCHOR = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


class Seconds:
    def __init__(self) -> None:
        self.now_s = 10.0

    def __call__(self) -> float:
        return self.now_s


def test_flags_before_double_dash_and_entrypoint_after() -> None:
    args, entrypoint = parse_args(["--interval-s", "5", "--", "python", "-m", "x", "--steps", "3"])
    assert args.interval_s == 5.0
    assert entrypoint == ["python", "-m", "x", "--steps", "3"]
    args, entrypoint = parse_args(["--", "echo hi && exit 3"])
    assert args.interval_s == 30.0
    assert entrypoint == ["echo hi && exit 3"]


@pytest.mark.parametrize(
    "flags",
    [
        [],
        ["--interval-s", "5"],
        ["--interval-s=0.5", "--meter", "estimate"],
        ["--meter=auto", "--stop-grace-s", "3", "--exchange-timeout-s", "4"],
        ["--flush-timeout-s", "7.5", "--interval-s", "1e1"],
        ["--interval-s", "5", "--interval-s", "6"],  # argparse: the last one wins
    ],
)
def test_the_direct_read_of_flags_agrees_with_argparse(flags: list[str]) -> None:
    direct = parse_args([*flags, "--", "true"])
    # Without "--" every flag goes through argparse (the entrypoint is its REMAINDER).
    assert direct == parse_args([*flags, "true"])
    assert direct[1] == ["true"]


@pytest.mark.parametrize(
    "flags",
    [
        ["--interval-s", "0"],
        ["--interval-s", "nan"],
        ["--interval-s", "-1"],
        ["--interval-s", "soon"],
        ["--interval-s"],
        ["--meter", "magic"],
        ["--intervals", "5"],
        ["-x"],
    ],
)
def test_bad_flags_exit_2_with_argparse_saying_why(
    flags: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as caught:
        parse_args([*flags, "--", "true"])
    assert caught.value.code == 2
    assert "python -m workers.runner: error:" in capsys.readouterr().err


def test_one_argument_is_a_shell_line_several_are_an_argv() -> None:
    assert build_argv(["echo $HOME | wc"]) == ["/bin/sh", "-c", "echo $HOME | wc"]
    assert build_argv(["python", "-c", "pass"]) == ["python", "-c", "pass"]
    with pytest.raises(ValueError, match="no entrypoint"):
        build_argv([])


def test_exit_codes_follow_the_shell_convention() -> None:
    assert exit_code_of(0) == 0
    assert exit_code_of(3) == 3
    assert exit_code_of(-15) == 143
    assert exit_code_of(-9) == 137


def test_config_from_env_reads_the_contract() -> None:
    args, _ = parse_args(["--interval-s", "2", "--", "true"])
    env = {
        "GREENLIGHT_API_URL": "http://127.0.0.1:9/",
        "GREENLIGHT_JOB_ID": "job 1",
        "GREENLIGHT_TOKEN": "t0k",
        "GREENLIGHT_ATTEMPT": "3",
        "GREENLIGHT_NODE": "n1",
        "GREENLIGHT_GPUS": "2",
        "GREENLIGHT_CPUS": "1.5",
        "GREENLIGHT_GPU_POWER_W": "400",
        "GREENLIGHT_CPU_CORE_POWER_W": "8",
        "GREENLIGHT_BASE_POWER_W": "0",
        "GREENLIGHT_METER": "estimate",
    }
    config = config_from(args, env)
    assert config.target == ApiTarget(api_url="http://127.0.0.1:9/", job_id="job 1", token="t0k")
    assert config.target.energy_url == "http://127.0.0.1:9/v1/jobs/job%201/energy"
    assert (config.attempt, config.node, config.interval_s) == (3, "n1", 2.0)
    assert config.meter_mode == "estimate"
    power = config.power
    assert (power.gpus, power.cpus, power.gpu_w, power.cpu_core_w, power.base_w) == (
        2,
        1.5,
        400.0,
        8.0,
        0.0,
    )


def test_partial_api_env_turns_reporting_off_and_bad_numbers_use_defaults(
    caplog: pytest.LogCaptureFixture,
) -> None:
    args, _ = parse_args(["--", "true"])
    env = {
        "GREENLIGHT_API_URL": "http://x",
        "GREENLIGHT_JOB_ID": "j",
        "GREENLIGHT_GPUS": "one",
        "GREENLIGHT_GPU_POWER_W": "lots",
        "GREENLIGHT_CPUS": "-2",
        "GREENLIGHT_ATTEMPT": "",
        "GREENLIGHT_METER": "magic",
    }
    with caplog.at_level(logging.WARNING):
        config = config_from(args, env)
    assert config.target is None
    assert config.attempt == 1
    assert config.meter_mode == "auto"
    assert (config.power.gpus, config.power.cpus, config.power.gpu_w) == (None, None, 300.0)
    logged = caplog.text
    for name in (
        "GREENLIGHT_TOKEN",
        "GREENLIGHT_GPUS",
        "GREENLIGHT_GPU_POWER_W",
        "GREENLIGHT_CPUS",
        "GREENLIGHT_METER",
    ):
        assert name in logged


def test_intervals_are_contiguous_and_carry_the_energy_between_cuts() -> None:
    clock = Seconds()
    meter = EstimateMeter(1, 0.0, 100.0, 0.0, 10.0, monotonic_s=clock)
    clock.now_s += 5.0  # energy before the cutter opens belongs to no interval
    cutter = IntervalCutter(meter, attempt=2, node="n", monotonic_s=clock, wall_anchor=ANCHOR)
    clock.now_s += 3.0
    first = cutter.cut()
    clock.now_s += 0.5
    second = cutter.cut()
    assert [r.device for r in first] == ["estimate:gpu", "estimate:base"]
    assert {(r.interval_start, r.interval_end) for r in first} == {
        (ANCHOR, ANCHOR + timedelta(seconds=3))
    }
    assert {r.interval_start for r in second} == {ANCHOR + timedelta(seconds=3)}
    assert {r.interval_end for r in second} == {ANCHOR + timedelta(seconds=3.5)}
    assert [r.energy_j for r in first] == pytest.approx([300.0, 30.0])
    assert [r.energy_j for r in second] == pytest.approx([50.0, 5.0])
    assert cutter.totals_j == pytest.approx({"estimate:gpu": 350.0, "estimate:base": 35.0})
    assert cutter.cut() == [], "no time passed: no empty interval"


def test_report_wire_format() -> None:
    clock = Seconds()
    cutter = IntervalCutter(
        EstimateMeter(0, 1.0, 1.0, 4.0, 0.0, monotonic_s=clock),
        attempt=1,
        node="node-a",
        monotonic_s=clock,
        wall_anchor=ANCHOR,
    )
    clock.now_s += 0.25
    (report,) = cutter.cut()
    assert report.to_json() == {
        "attempt": 1,
        "node": "node-a",
        "device": "estimate:cpu",
        "interval_start": "2024-05-01T12:00:00+00:00",
        "interval_end": "2024-05-01T12:00:00.250000+00:00",
        "energy_j": 1.0,
        "method": "estimate",
    }


def test_json_log_lines_carry_fields_and_the_exception() -> None:
    out = io.StringIO()
    configure_json_logging("info", stream=out)
    try:
        logger = get_logger("workers.runner")
        logger.debug("not at info")
        logger.info("sent %d", 3, extra={"fields": {"event": "sent", "count": 3}})
        try:
            raise RuntimeError("meter broke")
        except RuntimeError:
            logger.exception("reading failed")
        logger.warning("%d of %d", 1)  # a wrong format keeps the text, never raises
    finally:
        use_standard_logging()
    lines = [json.loads(text) for text in out.getvalue().splitlines()]
    assert [line["msg"] for line in lines] == ["sent 3", "reading failed", "%d of %d (1,)"]
    first = lines[0]
    assert (first["level"], first["logger"], first["event"], first["count"]) == (
        "info",
        "workers.runner",
        "sent",
        3,
    )
    assert datetime.fromisoformat(first["ts"]).tzinfo is not None
    assert lines[1]["level"] == "error"
    assert "RuntimeError: meter broke" in lines[1]["exc"]
    assert lines[2]["level"] == "warning"


def test_unconfigured_worker_logs_reach_standard_logging(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="workers.reporter"):
        get_logger("workers.reporter").info("kept %s", "here", extra={"fields": {"n": 1}})
    (record,) = [r for r in caplog.records if r.name == "workers.reporter"]
    assert record.getMessage() == "kept here"
    assert getattr(record, "fields", None) == {"n": 1}
