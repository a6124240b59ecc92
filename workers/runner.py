"""Wraps a job's entrypoint on a worker node: runs it, meters energy, reports it, mirrors its
exit status.

Usage::

    python -m workers.runner [--interval-s 30] [--meter auto|estimate] -- <entrypoint...>

One argument after ``--`` is a shell command line (``/bin/sh -c``); several are an argv.
Reporting is on when ``GREENLIGHT_API_URL``, ``GREENLIGHT_JOB_ID`` and ``GREENLIGHT_TOKEN`` are
all set: reports go to ``POST $GREENLIGHT_API_URL/v1/jobs/$GREENLIGHT_JOB_ID/energy`` every
``--interval-s`` and at exit. Without them (a local run) the command just runs and a summary is
printed to stderr. SIGTERM, SIGINT and SIGHUP are forwarded to the command's process group (so
interruptible jobs can checkpoint); if it has not exited ``--stop-grace-s`` later it is killed.
The runner exits with the command's exit status (``128 + N`` when signal N killed it), 127/126
when it could not be started, 2 for bad usage. The API being down never fails the job.

Environment (all optional):

* ``GREENLIGHT_API_URL``, ``GREENLIGHT_JOB_ID``, ``GREENLIGHT_TOKEN``: where and as whom to
  report (the token is removed from the command's environment); ``GREENLIGHT_ATTEMPT``
  (default 1); ``GREENLIGHT_NODE`` (default the hostname). A token starting ``glb_`` is the
  one-time bootstrap credential the dispatch hands out through Ray: before the command starts
  the runner exchanges it, once, at ``POST /v1/tokens/exchange`` for its attempt's token
  (retrying for up to ``--exchange-timeout-s``), so what Ray recorded is worthless afterwards.
  If the exchange fails, the command still runs, without reporting.
* ``GREENLIGHT_GPUS``, ``GREENLIGHT_CPUS``: what the job holds (GPUs: 0 skips NVML; CPUs scale
  RAPL to the job's share of cores); ``GREENLIGHT_GPU_POWER_W`` (300),
  ``GREENLIGHT_CPU_CORE_POWER_W`` (12), ``GREENLIGHT_BASE_POWER_W`` (20): power for estimates.
* ``GREENLIGHT_UNITS_FILE``: where the command's ``workers.units`` writes its count of steps
  or requests (SCI's functional unit); default a private temporary file. The runner sets it
  for the command, reads it with every energy report and at exit, and posts the total to
  ``POST $GREENLIGHT_API_URL/v1/jobs/$GREENLIGHT_JOB_ID/progress``.
* ``GREENLIGHT_ENDPOINT_FILE``: where a deployment writes the URL it answers at
  (``workers.endpoint``); default a private temporary file. The runner posts it to
  ``POST $GREENLIGHT_API_URL/v1/jobs/$GREENLIGHT_JOB_ID/endpoint`` (a wildcard host becomes the
  node's address toward the API, or ``GREENLIGHT_NODE_IP``).
* ``GREENLIGHT_METER`` (``auto``|``estimate``, overridden by ``--meter``),
  ``GREENLIGHT_LOG_LEVEL`` (INFO), ``CUDA_VISIBLE_DEVICES`` (which GPUs NVML meters).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import NamedTuple, TypeVar

from workers import http_post
from workers.child import (
    EXIT_NOT_EXECUTABLE,
    EXIT_NOT_FOUND,
    ChildProcess,
    build_argv,
    exit_code_of,
)
from workers.endpoint import EndpointWatcher
from workers.energy import Meter, MeterMode, PowerSpec, build_meter
from workers.energy.estimate import EstimateMeter
from workers.intervals import IntervalCutter
from workers.jsonlog import configure_json_logging, get_logger
from workers.progress import ProgressReporter
from workers.reporter import ApiTarget, EnergyReporter, ReporterStats, RetryPolicy
from workers.scratch import private_folder, remove_folder
from workers.units import UNITS_FILE_ENV

logger = get_logger("workers.runner")

FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
EXIT_USAGE = 2
J_PER_KWH = 3_600_000.0
# Env vars the child does not need: the per-job token is the runner's credential only.
_PRIVATE_ENV = ("GREENLIGHT_TOKEN",)
BOOTSTRAP_PREFIX = "glb_"  # scheduler.service.tokens.BOOTSTRAP_PREFIX
_EXCHANGE_RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
_T = TypeVar("_T")


class RunnerConfig(NamedTuple):
    """Everything the runner needs, read once from CLI flags and the environment."""

    interval_s: float = 30.0
    poll_s: float = 1.0
    stop_grace_s: float = 60.0
    flush_timeout_s: float = 120.0
    meter_mode: MeterMode = "auto"
    attempt: int = 1
    node: str = socket.gethostname()
    target: ApiTarget | None = None
    power: PowerSpec = PowerSpec()
    retry: RetryPolicy = RetryPolicy()


class RunnerArgs(NamedTuple):
    """The runner's own flags (before ``--``)."""

    interval_s: float = 30.0
    meter: str | None = None
    stop_grace_s: float = 60.0
    exchange_timeout_s: float = 60.0
    flush_timeout_s: float = 120.0


def parse_args(argv: Sequence[str]) -> tuple[RunnerArgs, list[str]]:
    """Split runner flags from the entrypoint at the first ``--``. Exits 2 on bad flags.

    Well-formed flags before a ``--`` are read directly; anything else (help, a typo, a bad
    value, no ``--``) goes through ``argparse``, which says what is wrong. ``argparse`` costs
    a few milliseconds of imports that every job's start would pay."""
    argv = list(argv)
    if "--" in argv:
        split = argv.index("--")
        flags = _read_flags(argv[:split])
        if flags is not None:
            return flags, argv[split + 1 :]
    return _parse_with_argparse(argv)


def _read_flags(flags: list[str]) -> RunnerArgs | None:
    """``--name value`` / ``--name=value`` pairs of known flags with valid values; None for
    anything else (left to argparse to explain)."""
    values: dict[str, float | str] = {}
    words = iter(flags)
    for word in words:
        name, eq, value = word.partition("=")
        if not eq:
            value = next(words, "")
        field = _FLAGS.get(name)
        if field is None or not value or field in values:
            return None
        if field == "meter":
            if value not in ("auto", "estimate"):
                return None
            values[field] = value
            continue
        try:
            number = float(value)
        except ValueError:
            return None
        if not number > 0:  # also refuses nan; argparse says why
            return None
        values[field] = number
    return RunnerArgs(**values)  # type: ignore[arg-type]  # names and types checked above


_FLAGS = {
    "--interval-s": "interval_s",
    "--meter": "meter",
    "--stop-grace-s": "stop_grace_s",
    "--exchange-timeout-s": "exchange_timeout_s",
    "--flush-timeout-s": "flush_timeout_s",
}


def _parse_with_argparse(argv: list[str]) -> tuple[RunnerArgs, list[str]]:
    import argparse

    def positive(text: str) -> float:
        value = float(text)
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value

    parser = argparse.ArgumentParser(
        prog="python -m workers.runner",
        description="Run a command, meter its energy and report it to Greenlight.",
    )
    parser.add_argument(
        "--interval-s",
        type=positive,
        default=30.0,
        help="seconds between periodic energy reports (default 30)",
    )
    parser.add_argument(
        "--meter",
        choices=["auto", "estimate"],
        default=None,
        help="auto: NVML/RAPL where readable; estimate: configured power only "
        "(default $GREENLIGHT_METER or auto)",
    )
    parser.add_argument(
        "--stop-grace-s",
        type=positive,
        default=60.0,
        help="after a forwarded stop signal, SIGKILL the command this late",
    )
    parser.add_argument(
        "--exchange-timeout-s",
        type=positive,
        default=60.0,
        help="keep trying to exchange a bootstrap credential this long before giving up",
    )
    parser.add_argument(
        "--flush-timeout-s",
        type=positive,
        default=120.0,
        help="at exit, give up sending reports after this many seconds (they are in the "
        "job's log too, as GREENLIGHT_ENERGY lines, for the scheduler to read back)",
    )
    if "--" in argv:
        split = argv.index("--")
        namespace, entrypoint = parser.parse_args(argv[:split]), argv[split + 1 :]
    else:
        parser.add_argument("entrypoint", nargs=argparse.REMAINDER)
        namespace = parser.parse_args(argv)
        entrypoint = list(namespace.entrypoint)
    return RunnerArgs(**{name: getattr(namespace, name) for name in RunnerArgs._fields}), entrypoint


def config_from(args: RunnerArgs, env: Mapping[str, str]) -> RunnerConfig:
    """Build the config; a malformed env var is logged and its default used, because a typo
    in a power figure must not stop the job from running."""
    api_url, job_id = env.get("GREENLIGHT_API_URL"), env.get("GREENLIGHT_JOB_ID")
    token = env.get("GREENLIGHT_TOKEN")
    target = None
    if api_url and job_id and token:
        target = ApiTarget(api_url=api_url, job_id=job_id, token=token)
    elif api_url or job_id or token:
        logger.warning(
            "reporting off: GREENLIGHT_API_URL, GREENLIGHT_JOB_ID and "
            "GREENLIGHT_TOKEN must all be set"
        )
    requested = args.meter or env.get("GREENLIGHT_METER", "auto")
    mode: MeterMode = "estimate" if requested == "estimate" else "auto"
    if requested not in ("auto", "estimate"):
        logger.error("GREENLIGHT_METER=%r is not auto|estimate; using auto", requested)
    defaults = PowerSpec()
    power = PowerSpec(
        gpus=_env_float(env, "GREENLIGHT_GPUS"),
        cpus=_env_float(env, "GREENLIGHT_CPUS"),
        gpu_w=_or(_env_float(env, "GREENLIGHT_GPU_POWER_W"), defaults.gpu_w),
        cpu_core_w=_or(_env_float(env, "GREENLIGHT_CPU_CORE_POWER_W"), defaults.cpu_core_w),
        base_w=_or(_env_float(env, "GREENLIGHT_BASE_POWER_W"), defaults.base_w),
    )
    return RunnerConfig(
        interval_s=args.interval_s,
        poll_s=min(1.0, args.interval_s),
        stop_grace_s=args.stop_grace_s,
        flush_timeout_s=args.flush_timeout_s,
        meter_mode=mode,
        attempt=_or(_env_int(env, "GREENLIGHT_ATTEMPT"), 1),
        node=env.get("GREENLIGHT_NODE") or socket.gethostname(),
        target=target,
        power=power,
    )


def _or(value: _T | None, default: _T) -> _T:
    return default if value is None else value


def _env_float(env: Mapping[str, str], name: str) -> float | None:
    """A non-negative number from ``env[name]``; None (logged) when absent or malformed."""
    raw = env.get(name, "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0:  # also rejects nan
        logger.error("%s=%r is not a non-negative number; using the default", name, raw)
        return None
    return value


def _env_int(env: Mapping[str, str], name: str) -> int | None:
    value = _env_float(env, name)
    if value is None:
        return None
    if not value.is_integer():
        logger.error("%s=%r is not a whole number; using the default", name, env[name])
        return None
    return int(value)


class Runner:
    """Runs one command under one meter, optionally reporting to the API.

    ``monotonic_s`` must be the clock the meter uses (``time.monotonic`` for real meters).
    """

    def __init__(
        self,
        config: RunnerConfig,
        meter: Meter,
        reporter: EnergyReporter | None,
        *,
        monotonic_s: Callable[[], float] = time.monotonic,
        progress: ProgressReporter | None = None,
    ) -> None:
        self._config = config
        self._meter = meter
        self._reporter = reporter
        self._progress = progress
        self._monotonic_s = monotonic_s
        self._child: ChildProcess | None = None
        self._child_running = False
        self._signals: list[int] = []
        self._unforwarded: list[int] = []
        self._stop_requested_s: float | None = None

    def run(self, argv: Sequence[str], env: Mapping[str, str]) -> int:
        """Run ``argv`` to completion and return the runner's exit status."""
        cutter = IntervalCutter(
            self._meter,
            attempt=self._config.attempt,
            node=self._config.node,
            monotonic_s=self._monotonic_s,
        )
        # Handlers stay installed through the final flush: a second stop signal then must not
        # kill the runner before its last report is out (the cluster escalates to SIGKILL).
        previous = {s: signal.signal(s, self._on_signal) for s in FORWARDED_SIGNALS}
        try:
            exit_code = self._start_and_wait(argv, env, cutter)
            self._send(cutter)
            closing_s = self._monotonic_s()
            stats = self._reporter.close(self._config.flush_timeout_s) if self._reporter else None
            if self._progress is not None:  # its sender ran alongside: the rest of the budget
                spent_s = self._monotonic_s() - closing_s
                self._progress.close(max(1.0, self._config.flush_timeout_s - spent_s))
            self._meter.close()
            self._summarise(cutter, exit_code, stats)
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        return exit_code

    def _start_and_wait(
        self, argv: Sequence[str], env: Mapping[str, str], cutter: IntervalCutter
    ) -> int:
        if self._signals:
            logger.warning("stopped by signal %d before the command started", self._signals[0])
            return 128 + self._signals[0]
        child_env = {k: v for k, v in env.items() if k not in _PRIVATE_ENV}
        if self._progress is not None:  # where workers.units writes the job's count
            child_env[UNITS_FILE_ENV] = str(self._progress.path)
        try:
            self._child = ChildProcess(argv, child_env)
        except FileNotFoundError as e:
            logger.error("cannot start %s: %s", argv[0], e)
            return EXIT_NOT_FOUND
        except PermissionError as e:
            logger.error("cannot start %s: %s", argv[0], e)
            return EXIT_NOT_EXECUTABLE
        self._child_running = True
        for signum in self._unforwarded:  # arrived while the child was being spawned
            self._child.send_signal(signum)
        logger.info(
            "command started",
            extra={
                "fields": {
                    "event": "started",
                    "pid": self._child.pid,
                    "argv": list(argv),
                    "devices": cutter.methods,
                }
            },
        )
        returncode = self._wait(self._child, cutter)
        # From here its process group id may be reused: never signal it again.
        self._child_running = False
        return exit_code_of(returncode)

    def _wait(self, child: ChildProcess, cutter: IntervalCutter) -> int:
        interval_s = self._config.interval_s
        next_cut_s = self._monotonic_s() + interval_s
        while True:
            returncode = child.wait(self._config.poll_s)
            if returncode is not None:
                return returncode
            readings_j = self._read_meter()  # frequent reads let wrapping counters unwrap
            now_s = self._monotonic_s()
            if now_s >= next_cut_s:
                self._send(cutter, readings_j)
                while next_cut_s <= now_s:
                    next_cut_s += interval_s
            stop_s = self._stop_requested_s
            if stop_s is not None and now_s - stop_s >= self._config.stop_grace_s:
                logger.warning(
                    "command ignored the stop signal for %.0f s; killing it", now_s - stop_s
                )
                child.kill()
                self._stop_requested_s = float("inf")

    def _read_meter(self) -> dict[str, float] | None:
        try:
            return self._meter.read()
        except Exception:  # the runner is a shell: metering must never kill the job
            logger.exception("reading the meters failed")
            return None

    def _send(self, cutter: IntervalCutter, readings_j: dict[str, float] | None = None) -> None:
        if readings_j is None:
            readings_j = self._read_meter() or {}
        reports = cutter.cut(readings_j)
        if reports and self._reporter is not None:
            self._reporter.submit(reports)
        if self._progress is not None:
            self._progress.poll()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._signals.append(signum)
        if self._stop_requested_s is None:
            self._stop_requested_s = self._monotonic_s()
        if self._child is None:
            self._unforwarded.append(signum)
        elif self._child_running:
            self._child.send_signal(signum)

    def _summarise(
        self, cutter: IntervalCutter, exit_code: int, stats: ReporterStats | None
    ) -> None:
        totals_j = cutter.totals_j
        total_j = sum(totals_j.values())
        duration_s = (cutter.last_cut - cutter.started_at).total_seconds()
        logger.info(
            "command finished",
            extra={
                "fields": {
                    "event": "summary",
                    "exit_code": exit_code,
                    "duration_s": round(duration_s, 3),
                    "energy_j": round(total_j, 3),
                    "devices": {
                        d: {"energy_j": round(e, 3), "method": cutter.methods[d]}
                        for d, e in totals_j.items()
                    },
                    "signals": self._signals,
                    "reports": stats.as_dict() if stats else None,
                    "units": self._progress.state.units if self._progress else None,
                }
            },
        )
        if self._reporter is None:
            parts = ", ".join(f"{d} {e:.1f} J ({cutter.methods[d]})" for d, e in totals_j.items())
            sys.stderr.write(
                f"greenlight runner: exit {exit_code} after {duration_s:.1f} s; "
                f"energy {total_j:.1f} J = {total_j / J_PER_KWH:.6f} kWh [{parts}]\n"
            )


def exchange_bootstrap(
    target: ApiTarget, *, timeout_s: float, retry: RetryPolicy, sleep: Callable[[float], None]
) -> ApiTarget | None:
    """``target`` with its bootstrap credential traded for the attempt's token, or None when
    the API refused it (used, expired) or stayed unreachable for ``timeout_s``."""
    url = f"{target.api_url.rstrip('/')}/v1/tokens/exchange"
    deadline_s = time.monotonic() + timeout_s
    delay_s = retry.initial_s
    while True:
        try:
            response = http_post.post(
                url, token=target.token, timeout=(retry.connect_timeout_s, retry.read_timeout_s)
            )
        except http_post.TransportError as e:
            problem = f"unreachable: {e}"
        else:
            if response.status == 201:
                token = response.json_object().get("token")
                if isinstance(token, str) and token:
                    logger.info("bootstrap credential exchanged for the attempt's token")
                    return ApiTarget(api_url=target.api_url, job_id=target.job_id, token=token)
                problem = "answered without a token"
            elif response.status not in _EXCHANGE_RETRY_STATUS:
                logger.error(
                    "reporting off: the API refused the bootstrap credential (%d %s)",
                    response.status,
                    response.text[:200],
                )
                return None
            else:
                problem = f"answered {response.status}"
        if time.monotonic() + delay_s > deadline_s:
            logger.error("reporting off: could not exchange the bootstrap credential (%s)", problem)
            return None
        logger.warning("exchanging the bootstrap credential: %s; retrying", problem)
        sleep(delay_s)
        delay_s = min(delay_s * retry.multiplier, retry.max_s)


def open_meter(config: RunnerConfig, env: Mapping[str, str]) -> Meter:
    """The configured meter; on any unexpected failure an estimate, so the job still runs."""
    try:
        return build_meter(config.power, mode=config.meter_mode, env=env)
    except Exception:  # the runner is a shell: metering must never stop the job
        logger.exception("building meters failed; estimating everything")
        spec = config.power
        return EstimateMeter(
            spec.gpus or 0,
            spec.cpus if spec.cpus is not None else 1.0,
            spec.gpu_w,
            spec.cpu_core_w,
            spec.base_w,
        )


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    """CLI entry: parse, build meter and reporter, run; returns the exit status."""
    env = dict(os.environ if env is None else env)
    configure_json_logging(env.get("GREENLIGHT_LOG_LEVEL", "INFO"))
    args, entrypoint = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        command = build_argv(entrypoint)
    except ValueError as e:
        logger.error("%s", e)
        return EXIT_USAGE
    config = config_from(args, env)
    target = config.target
    if target is not None and target.token.startswith(BOOTSTRAP_PREFIX):
        target = exchange_bootstrap(
            target, timeout_s=args.exchange_timeout_s, retry=config.retry, sleep=time.sleep
        )
    meter = open_meter(config, env)
    # Without a target (no token: the exchange failed) reports still go to the job's log.
    job_id = env.get("GREENLIGHT_JOB_ID")
    reporter = (
        EnergyReporter(target, policy=config.retry, job_id=job_id) if target or job_id else None
    )
    # A deployment writes where it answers to $GREENLIGHT_ENDPOINT_FILE; a thread posts it.
    EndpointWatcher.start(target, env, retry=config.retry)
    with units_file(env) as path:
        progress = ProgressReporter(
            target, path, attempt=config.attempt, policy=config.retry, job_id=job_id
        )
        return Runner(config, meter, reporter, progress=progress).run(command, env)


@contextlib.contextmanager
def units_file(env: Mapping[str, str]) -> Iterator[Path]:
    """The job's units file: ``$GREENLIGHT_UNITS_FILE`` when set, else one in a private
    temporary folder removed afterwards."""
    given = env.get(UNITS_FILE_ENV)
    if given:
        yield Path(given)
        return
    folder = private_folder("greenlight-units-")
    try:
        yield Path(folder) / "units.json"
    finally:
        remove_folder(folder)


if __name__ == "__main__":
    sys.exit(main())
