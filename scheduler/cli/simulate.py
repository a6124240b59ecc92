"""``greenlight simulate``: replay a job trace against carbon traces with each policy, offline,
and compare them to running now (and to the offline optimum when it is small enough).

Progress and warnings go to stderr (``simulate_progress``), so stdout holds only the header and
the table (or, with ``--json``, only JSON). Bad input (a file, a column, an option) exits 2, as
Typer's own usage errors do; a run that fails after its input was accepted exits 1.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperCommand

from scheduler.cli.errors import CliError
from scheduler.cli.render import console, print_json
from scheduler.cli.simulate_progress import reporter
from scheduler.domain import GreenlightError, Policy
from scheduler.simulation.carbon_traces import CarbonUnit

if TYPE_CHECKING:
    from scheduler.simulation.cli import SimulationOptions
    from scheduler.simulation.results import SimulationResult

EXIT_BAD_INPUT = 2  # click's UsageError code
HELP_WIDTH = 80


class PlainHelpCommand(TyperCommand):
    """Help as click lays it out (option names whole, help wrapped beside or below them) at
    most ``HELP_WIDTH`` columns wide: rich's option table cuts long names at 80 columns."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.rich_markup_mode = None


def register(app: typer.Typer) -> None:
    """Add ``simulate`` to the root command."""
    app.command(
        "simulate",
        cls=PlainHelpCommand,
        context_settings={"max_content_width": HELP_WIDTH},
    )(simulate)


def simulate(
    jobs: Annotated[
        Path,
        typer.Option(
            metavar="FILE", help="Job trace CSV: GAIA, Alibaba openb, Philly, or --job-columns."
        ),
    ],
    carbon: Annotated[
        list[Path],
        typer.Option(
            metavar="FILE", help="Carbon trace CSV per region (repeat); formats: see the README."
        ),
    ],
    region: Annotated[
        list[str] | None,
        typer.Option(metavar="NAME", help="Region name per --carbon (default: each trace's zone)."),
    ] = None,
    policy: Annotated[
        list[Policy] | None,
        typer.Option(help="Policy to compare (repeat; default: all; now is always in)."),
    ] = None,
    job_columns: Annotated[
        str | None,
        typer.Option(
            metavar="MAP",
            help="Map job columns: submit=C,end=C|duration=C[,start=C,gpus=C,cpus=C] "
            "(times: epoch s or ISO; rows with no end are skipped).",
        ),
    ] = None,
    carbon_columns: Annotated[
        str | None,
        typer.Option(metavar="MAP", help="Map carbon columns: time=COL,intensity=COL."),
    ] = None,
    carbon_unit: Annotated[
        CarbonUnit | None,
        typer.Option(help="Unit of carbon values (default: the format's; mapped: g/kWh)."),
    ] = None,
    carbon_tz: Annotated[
        str | None,
        typer.Option(metavar="ZONE", help="Zone of naive carbon times: Europe/Berlin, +02:00."),
    ] = None,
    from_date: Annotated[
        str | None,
        typer.Option("--from", metavar="DATE", help="Jobs submitted from this date on."),
    ] = None,
    to_date: Annotated[
        str | None,
        typer.Option("--to", metavar="DATE", help="Jobs submitted up to this date (included)."),
    ] = None,
    start_offset: Annotated[
        str | None,
        typer.Option(metavar="DURATION", help="Skip the trace's first part: 3600, 36h, 30d."),
    ] = None,
    align_year: Annotated[
        bool,
        typer.Option(help="Move jobs onto the carbon traces' year (weekday, hour kept)."),
    ] = False,
    capacity: Annotated[
        int | None,
        typer.Option(min=1, help="GPUs per region (default: unlimited)."),
    ] = None,
    cpu_capacity: Annotated[
        int | None,
        typer.Option(min=1, help="CPU cores per region, instead of GPUs."),
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
        typer.Option(min=1, help="Planning interval, s: a multiple of the grid step."),
    ] = None,
    every_cycle: Annotated[
        bool, typer.Option(help="Re-plan at every cycle while jobs wait (slow).")
    ] = False,
    budget_s: Annotated[
        float | None,
        typer.Option(
            min=0, show_default=False, help="Planner budget per cycle, s (default: service's)."
        ),
    ] = None,
    optimum_max_jobs: Annotated[
        int, typer.Option(min=0, help="Solve the offline optimum up to this many jobs.")
    ] = 400,
    optimum_max_nonzeros: Annotated[
        int, typer.Option(min=0, help="... and up to this many MIP nonzeros (memory).")
    ] = 5_000_000,
    optimum_time_limit: Annotated[
        float, typer.Option(min=0.1, help="Time limit of the optimum's solve, s.")
    ] = 60.0,
    workers: Annotated[
        int | None,
        typer.Option(min=1, help="Policies replayed at once (default: CPUs, from 200 jobs)."),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(metavar="DIR", help="Write simulation.csv and .png here.")
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")] = False,
    progress: Annotated[bool, typer.Option(help="Show progress on stderr.")] = True,
) -> None:
    """Compare scheduling policies on real traces: emissions, waits, deadline misses."""
    from scheduler.simulation.cli import SimulationOptions, run_simulation
    from scheduler.simulation.trace_input import SimulationInputError

    try:
        options = _options(
            SimulationOptions(
                max_jobs=max_jobs,
                slack_s=slack_s,
                cycle_s=cycle_s,
                every_cycle=every_cycle,
                budget_s=_service_budget_s() if budget_s is None else budget_s,
                optimum_max_jobs=optimum_max_jobs,
                optimum_max_nonzeros=optimum_max_nonzeros,
                optimum_time_limit_s=optimum_time_limit,
                workers=workers,
                cpu_capacity=cpu_capacity,
            ),
            job_columns=job_columns,
            carbon_columns=carbon_columns,
            carbon_unit=carbon_unit,
            carbon_tz=carbon_tz,
            dates=(from_date, to_date),
            start_offset=start_offset,
            align_year=align_year,
        )
        with reporter(enabled=progress) as bars:
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
                solver_progress=bars.solver,
                warn=bars.warn,
            )
    except SimulationInputError as e:
        raise CliError(str(e), EXIT_BAD_INPUT) from None
    except (GreenlightError, ValueError, OSError) as e:
        raise CliError(f"simulation failed: {e}") from None
    if json_output:
        print_json(_result_dict(result))
        return
    _print_result(result)


def _options(
    base: SimulationOptions,
    *,
    job_columns: str | None,
    carbon_columns: str | None,
    carbon_unit: CarbonUnit | None,
    carbon_tz: str | None,
    dates: tuple[str | None, str | None],
    start_offset: str | None,
    align_year: bool,
) -> SimulationOptions:
    """The options the flags spell out; raises SimulationInputError for one it cannot read."""
    from scheduler.simulation.carbon_traces import CarbonReading, parse_carbon_columns
    from scheduler.simulation.job_readers import parse_job_columns
    from scheduler.simulation.placement import Selection
    from scheduler.simulation.trace_input import parse_date, parse_duration_s, time_zone

    start = None if dates[0] is None else parse_date(dates[0], "--from")
    end = None if dates[1] is None else parse_date(dates[1], "--to")
    if end is not None and dates[1] is not None and len(dates[1].strip()) == len("2024-01-31"):
        end += timedelta(days=1)  # a date names the whole day
    return dataclasses.replace(
        base,
        job_columns=None if job_columns is None else parse_job_columns(job_columns),
        carbon=CarbonReading(
            columns=None if carbon_columns is None else parse_carbon_columns(carbon_columns),
            unit=carbon_unit,
            zone=time_zone(carbon_tz),
        ),
        selection=Selection(
            start=start,
            end=end,
            offset_s=None
            if start_offset is None
            else parse_duration_s(start_offset, "--start-offset"),
            align_year=align_year,
        ),
    )


def _service_budget_s() -> float:
    """The service's default improvement budget per planning cycle, so that a replay plans
    with the effort the service would spend."""
    from scheduler.config import Settings

    default = Settings.model_fields["planning_budget_s"].default
    return float(default)


def _print_result(result: SimulationResult) -> None:
    from scheduler.simulation.results import header_lines, rich_table

    out_console = console()
    for line in header_lines(result):
        out_console.print(line, markup=False)
    out_console.print(rich_table(result))
    for note in result.notes:
        out_console.print(f"note: {note}", markup=False)
    if result.dropped_jobs:
        out_console.print(
            f"{result.dropped_jobs} trace jobs left out (outside the carbon traces, past "
            "--max-jobs, or wider than the capacity)"
        )
    for path in (result.csv_path, result.png_path):
        if path is not None:
            out_console.print(f"wrote {path}", markup=False)


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
        "capacity_resource": result.resource,
        "traces": [dataclasses.asdict(t) for t in result.traces],
        "notes": list(result.notes),
        "warnings": list(result.warnings),
        "csv_path": str(result.csv_path) if result.csv_path else None,
        "png_path": str(result.png_path) if result.png_path else None,
        "rows": rows,
    }
