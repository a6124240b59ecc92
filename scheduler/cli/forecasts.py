"""Region and forecast commands: ``regions``, ``forecast show|pull|accuracy``."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

import typer

from scheduler.cli.context import cli_context
from scheduler.cli.errors import CliError
from scheduler.cli.forecast_view import print_forecast
from scheduler.cli.render import console, print_accuracy, print_json, print_regions, text

JsonFlag = Annotated[bool, typer.Option("--json", help="Print the API's JSON instead of a table.")]
RegionArg = Annotated[str, typer.Argument(help="A region name (see `greenlight regions`).")]

forecast_app = typer.Typer(help="Carbon-intensity forecasts per region.", no_args_is_help=True)


def regions(ctx: typer.Context, json_output: JsonFlag = False) -> None:
    """List regions: provider, zone, capacity, last refresh, horizon, staleness."""
    body = cli_context(ctx).client().get("/v1/regions")
    if json_output:
        print_json(body)
    else:
        print_regions(body["data"])


@forecast_app.command("show")
def show(
    ctx: typer.Context,
    region: RegionArg,
    hours: Annotated[float, typer.Option(min=1, max=168, help="Hours ahead to show.")] = 48,
    json_output: JsonFlag = False,
) -> None:
    """Show a region's forecast: sparkline and hourly table, best window marked."""
    body = cli_context(ctx).client().get(f"/v1/forecasts/{quote(region, safe='')}")
    if json_output:
        print_json(body)
    else:
        print_forecast(body, hours)


@forecast_app.command("pull")
def pull(
    ctx: typer.Context,
    region: Annotated[str | None, typer.Argument(help="One region; default: all.")] = None,
    json_output: JsonFlag = False,
) -> None:
    """Fetch fresh forecasts now (admin token); exits 1 if any region failed."""
    body = cli_context(ctx).client().post("/v1/forecasts/pull", params={"region": region})
    results: dict[str, str] = body["results"]
    if json_output:
        print_json(body)
    else:
        out = console()
        for name, outcome in sorted(results.items()):
            out.print(f"{text(name)}: {text(outcome)}")
    failed = sorted(name for name, outcome in results.items() if outcome != "ok")
    if failed:
        raise CliError(f"forecast pull failed for {', '.join(failed)}")


@forecast_app.command("accuracy")
def accuracy(ctx: typer.Context, region: RegionArg, json_output: JsonFlag = False) -> None:
    """Show forecast error (MAE, g/kWh) by lead time for a region."""
    body = cli_context(ctx).client().get(f"/v1/forecasts/{quote(region, safe='')}/accuracy")
    if json_output:
        print_json(body)
    else:
        print_accuracy(body)


def register(app: typer.Typer) -> None:
    app.command("regions")(regions)
    app.add_typer(forecast_app, name="forecast")
