"""``greenlight simulate``: replay a job trace against carbon traces with each policy, offline,
and compare them to running now (and to the offline optimum when it is small enough)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn

from scheduler.cli.errors import CliError
from scheduler.cli.render import console, print_json
from scheduler.domain import GreenlightError, Policy

if TYPE_CHECKING:
    from scheduler.simulation.results import SimulationResult


def simulate(
    jobs: Annotated[Path, typer.Option(help="Job trace (CSV), e.g. from data/jobs/.")],
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
        int | None, typer.Option(min=1, help="GPUs per region (default: unlimited).")
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
    out: Annotated[Path | None, typer.Option(help="Write simulation.csv and .png here.")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON rows.")] = False,
) -> None:
    """Compare scheduling policies on real traces: emissions, waits, deadline misses."""
    from scheduler.simulation.cli import SimulationOptions, run_simulation
    from scheduler.simulation.results import rich_table

    options = SimulationOptions(max_jobs=max_jobs, slack_s=slack_s)
    try:
        with _PolicyBars(quiet=json_output) as bars:
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
    out_console = console()
    out_console.print(rich_table(result))
    for note in result.notes:
        out_console.print(f"note: {note}")
    if result.dropped_jobs:
        out_console.print(f"{result.dropped_jobs} trace jobs fell outside the carbon traces")
    for path in (result.csv_path, result.png_path):
        if path is not None:
            out_console.print(f"wrote {path}")


class _PolicyBars:
    """A rich bar per policy, fed by the simulation's ``(label, done, total)`` callback."""

    def __init__(self, *, quiet: bool) -> None:
        self._bars = Progress(
            TextColumn("{task.description:>14}"),
            BarColumn(),
            MofNCompleteColumn(),
            console=console(),
            disable=quiet,
        )
        self._tasks: dict[str, TaskID] = {}

    def __enter__(self) -> _PolicyBars:
        self._bars.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._bars.stop()

    def report(self, label: str, done: int, total: int) -> None:
        if label not in self._tasks:
            self._tasks[label] = self._bars.add_task(label, total=total)
        self._bars.update(self._tasks[label], completed=done, total=total)


def _result_dict(result: SimulationResult) -> dict[str, Any]:
    rows = [dataclasses.asdict(r) for r in result.rows]
    return {
        "regions": list(result.regions),
        "start": result.start.isoformat(),
        "end": result.end.isoformat(),
        "step_s": result.step_s,
        "forecast_error": result.forecast_error,
        "seed": result.seed,
        "jobs": result.jobs,
        "dropped_jobs": result.dropped_jobs,
        "notes": list(result.notes),
        "csv_path": str(result.csv_path) if result.csv_path else None,
        "png_path": str(result.png_path) if result.png_path else None,
        "rows": rows,
    }
