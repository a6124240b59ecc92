"""``greenlight simulate``: replay a job trace against carbon traces with each policy, offline,
and compare them to running now (and to the offline optimum when it is small enough).

Progress goes to stderr, so stdout holds only the table (or, with ``--json``, only JSON): rich
bars when stderr is a terminal, else one plain line per policy at its start, at most every
``LINE_INTERVAL_S`` while it runs, and at its end.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from scheduler.cli.errors import CliError
from scheduler.cli.render import console, print_json
from scheduler.domain import GreenlightError, Policy

if TYPE_CHECKING:
    from scheduler.simulation.results import SimulationResult

LINE_INTERVAL_S = 10.0


def simulate(
    jobs: Annotated[
        Path, typer.Option(help="Job trace (CSV: GAIA, Alibaba openb or Philly format).")
    ],
    carbon: Annotated[
        list[Path], typer.Option(help="A carbon-intensity trace per region (repeat).")
    ],
    region: Annotated[
        list[str] | None,
        typer.Option(help="Region names, one per --carbon (default: each trace's zone)."),
    ] = None,
    policy: Annotated[
        list[Policy] | None,
        typer.Option(help="Policies to compare (repeat; default: all; `now` is always in)."),
    ] = None,
    capacity: Annotated[
        int | None,
        typer.Option(min=1, help="GPUs per region (default: unlimited); wider jobs are left out."),
    ] = None,
    forecast_error: Annotated[
        float,
        typer.Option(min=0, help="Forecast error sigma, share of the trace mean (0: perfect)."),
    ] = 0.05,
    seed: Annotated[int, typer.Option(help="Seed for the forecast error.")] = 0,
    max_jobs: Annotated[int | None, typer.Option(min=1, help="Use the first N jobs.")] = None,
    slack_s: Annotated[
        float, typer.Option(min=0, help="Each job's slack beyond its run time, s.")
    ] = 24 * 3600.0,
    cycle_s: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Planning interval, s: a multiple of the grid step (default: the step). "
            "Arrivals and freed GPUs wait for the next cycle; longer is faster.",
        ),
    ] = None,
    every_cycle: Annotated[
        bool,
        typer.Option(help="Re-plan at every cycle while jobs wait, as the service does (slow)."),
    ] = False,
    budget_s: Annotated[
        float | None,
        typer.Option(
            min=0,
            show_default=False,
            help="Planner improvement budget per cycle, work-seconds "
            "(default: the service's planning_budget_s).",
        ),
    ] = None,
    optimum_max_jobs: Annotated[
        int,
        typer.Option(min=0, help="Solve the offline optimum (a MIP) up to this many jobs."),
    ] = 400,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Policies replayed at once, one process each (default: the CPUs, from 200 jobs).",
        ),
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Write simulation.csv and .png here.")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")] = False,
    progress: Annotated[bool, typer.Option(help="Show progress on stderr.")] = True,
) -> None:
    """Compare scheduling policies on real traces: emissions, waits, deadline misses."""
    from scheduler.simulation.cli import SimulationOptions, run_simulation

    options = SimulationOptions(
        max_jobs=max_jobs,
        slack_s=slack_s,
        cycle_s=cycle_s,
        every_cycle=every_cycle,
        budget_s=_service_budget_s() if budget_s is None else budget_s,
        optimum_max_jobs=optimum_max_jobs,
        workers=workers,
    )
    try:
        with _reporter(enabled=progress) as bars:
            result = run_simulation(
                jobs,
                carbon,
                regions=region,
                policies=policy,
                capacity=capacity,
                forecast_error=forecast_error,
                seed=seed,
                out_dir=out,
                options=options,
                progress=bars.report,
            )
    except (GreenlightError, ValueError, OSError) as e:
        raise CliError(f"simulation failed: {e}") from None
    if json_output:
        print_json(_result_dict(result))
        return
    _print_result(result)


def _service_budget_s() -> float:
    """The service's default improvement budget per planning cycle, so that a replay plans
    with the effort the service would spend."""
    from scheduler.config import Settings

    default = Settings.model_fields["planning_budget_s"].default
    return float(default)


def _print_result(result: SimulationResult) -> None:
    from scheduler.simulation.results import rich_table

    out_console = console()
    out_console.print(rich_table(result))
    for note in result.notes:
        out_console.print(f"note: {note}")
    if result.dropped_jobs:
        out_console.print(
            f"{result.dropped_jobs} trace jobs left out (outside the carbon traces, past "
            "--max-jobs, or wider than --capacity)"
        )
    for path in (result.csv_path, result.png_path):
        if path is not None:
            out_console.print(f"wrote {path}")


class _Silent:
    """No progress at all (``--no-progress``)."""

    def __enter__(self) -> _Silent:
        return self

    def __exit__(self, *_exc: object) -> None:
        return None

    def report(self, label: str, done: int, total: int) -> None:
        return None


class _Bars(_Silent):
    """A rich bar per policy on a terminal's stderr, fed by ``(label, done, total)``."""

    def __init__(self, stream: IO[str]) -> None:
        self._bars = Progress(
            TextColumn("{task.description:>14}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=Console(file=stream),
            transient=False,
        )
        self._tasks: dict[str, TaskID] = {}

    def __enter__(self) -> _Bars:
        self._bars.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._bars.stop()

    def report(self, label: str, done: int, total: int) -> None:
        if label not in self._tasks:
            self._tasks[label] = self._bars.add_task(label, total=total)
        self._bars.update(self._tasks[label], completed=done, total=total)


class _Lines(_Silent):
    """Plain progress lines for a log or a pipe: ``simulate: <label> <done>/<total> jobs``,
    per label at its start, at most every ``interval_s`` while it runs, and at its end
    (policies replayed in parallel interleave their lines)."""

    def __init__(self, stream: IO[str], interval_s: float = LINE_INTERVAL_S) -> None:
        self._stream, self._interval_s = stream, interval_s
        # label -> (first report, last line written, count on it), monotonic seconds
        self._seen: dict[str, tuple[float, float, int]] = {}

    def report(self, label: str, done: int, total: int) -> None:
        now_s = time.monotonic()
        started_s, last_s, last_done = self._seen.get(label, (now_s, -math.inf, -1))
        if done == last_done or (done < total and now_s - last_s < self._interval_s):
            return
        self._seen[label] = (started_s, now_s, done)
        share = 100.0 * done / total if total else 100.0
        self._stream.write(
            f"simulate: {label} {done}/{total} jobs ({share:.0f}%) {now_s - started_s:.0f} s\n"
        )
        self._stream.flush()


def _reporter(*, enabled: bool, stream: IO[str] | None = None) -> _Silent:
    """Bars on a terminal, lines otherwise, nothing when disabled; always on stderr."""
    stream = stream or sys.stderr
    if not enabled:
        return _Silent()
    return _Bars(stream) if stream.isatty() else _Lines(stream)


def _result_dict(result: SimulationResult) -> dict[str, Any]:
    rows = [dataclasses.asdict(r) for r in result.rows]
    return {
        "regions": list(result.regions),
        "start": result.start.isoformat(),
        "end": result.end.isoformat(),
        "step_s": result.step_s,
        "cycle_s": result.cycle_s,
        "forecast_error": result.forecast_error,
        "seed": result.seed,
        "jobs": result.jobs,
        "dropped_jobs": result.dropped_jobs,
        "notes": list(result.notes),
        "csv_path": str(result.csv_path) if result.csv_path else None,
        "png_path": str(result.png_path) if result.png_path else None,
        "rows": rows,
    }
