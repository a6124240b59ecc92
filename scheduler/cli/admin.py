"""Commands that run things locally rather than call the API: ``serve``, ``token create``
(straight to the database: how the first admin token is made), ``token list``/``revoke``,
``db upgrade``, ``demo``; and
``report``, which reads the API."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from scheduler.cli.context import cli_context
from scheduler.cli.errors import CliError
from scheduler.cli.render import console, fmt_time, print_json
from scheduler.cli.report_view import print_report
from scheduler.cli.rollup import db_rollup
from scheduler.domain import ApiToken, Role

EXIT_USAGE = 2  # click's code for a usage error

token_app = typer.Typer(help="API tokens (works on the database directly).", no_args_is_help=True)
db_app = typer.Typer(help="The database schema.", no_args_is_help=True)


class ReportFormat(StrEnum):
    TABLE = "table"
    JSON = "json"
    CSV = "csv"
    HTML = "html"


def serve(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help="Bind address (default: api_host).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: api_port).")] = None,
    no_cycles: Annotated[
        bool,
        typer.Option(
            "--no-cycles", help="Serve the API only; run 'greenlight scheduler' beside it."
        ),
    ] = False,
    in_process_cycles: Annotated[
        bool,
        typer.Option(
            "--in-process-cycles",
            help="Run the cycles in the API's own process (no scheduler process).",
        ),
    ] = False,
) -> None:
    """Run the API and the scheduling cycles (local Ray unless ray_address is set).

    The cycles run in a scheduler process this command starts and stops with itself."""
    from scheduler.bootstrap import serve as run_server

    if no_cycles and in_process_cycles:
        raise CliError("use --no-cycles or --in-process-cycles, not both", exit_code=EXIT_USAGE)
    overrides = {k: v for k, v in (("api_host", host), ("api_port", port)) if v is not None}
    cycles = "none" if no_cycles else "inline" if in_process_cycles else "child"
    run_server(cli_context(ctx).settings(**overrides), cycles=cycles)


def scheduler(ctx: typer.Context) -> None:
    """Run the plan, dispatch and reconcile cycles without the API (beside 'serve --no-cycles')."""
    from scheduler.bootstrap import run_scheduler

    run_scheduler(cli_context(ctx).settings())


@token_app.command("create")
def token_create(
    ctx: typer.Context,
    tenant: Annotated[str, typer.Option(help="The tenant the token acts for.")],
    admin: Annotated[bool, typer.Option("--admin", help="An admin token (all tenants).")] = False,
    name: Annotated[str, typer.Option(help="A label, e.g. who holds it.")] = "",
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Create a token in the configured database and print it (shown once)."""
    from scheduler.bootstrap import create_token

    if not tenant.strip():
        raise CliError("--tenant must not be empty")
    secret, token = create_token(
        cli_context(ctx).settings(),
        tenant=tenant,
        role=Role.ADMIN if admin else Role.USER,
        name=name,
    )
    if json_output:
        print_json(
            {
                "id": token.id,
                "tenant": token.tenant,
                "role": token.role.value,
                "name": token.name,
                "token": secret,
            }
        )
        return
    typer.echo(secret)
    typer.echo(
        f"token {token.id} for tenant {token.tenant!r} ({token.role.value}); it is shown "
        "only now: export GREENLIGHT_TOKEN=<it>",
        err=True,
    )


@token_app.command("list")
def token_list(
    ctx: typer.Context,
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's tokens.")] = None,
    workers: Annotated[
        bool, typer.Option("--workers", help="Also workers' attempt and bootstrap tokens.")
    ] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List tokens in the configured database, oldest first; secrets are never shown (only
    their hashes are stored)."""
    from scheduler.bootstrap import build_store
    from scheduler.service.tokens import list_tokens

    store = build_store(cli_context(ctx).settings())
    try:
        tokens = list_tokens(store, tenant=tenant, include_workers=workers)
    finally:
        store.close()
    rows = [_token_row(t) for t in tokens]
    if json_output:
        print_json(rows)
        return
    table = Table("id", "tenant", "role", "name", "job/attempt", "created", "expires", "revoked")
    for row in rows:
        job = f"{row['job_id']}/{row['attempt']}" if row["job_id"] else ""
        table.add_row(
            row["id"],
            row["tenant"],
            row["role"],
            row["name"],
            job,
            fmt_time(row["created_at"]),
            fmt_time(row["expires_at"]),
            "yes" if row["revoked"] else "",
        )
    console().print(table)


@token_app.command("revoke")
def token_revoke(
    ctx: typer.Context,
    token_id: Annotated[str, typer.Argument(help="The token's id (`greenlight token list`).")],
) -> None:
    """Revoke a token in the configured database: it is refused from its next request on."""
    from scheduler.bootstrap import build_store
    from scheduler.domain.tokens import TokenNotFound
    from scheduler.service.tokens import revoke_token

    store = build_store(cli_context(ctx).settings())
    try:
        token = revoke_token(store, token_id)
    except TokenNotFound as e:
        raise CliError(str(e)) from None
    finally:
        store.close()
    console().print(f"token {token.id} of tenant {token.tenant!r} ({token.role.value}) revoked")


def _token_row(token: ApiToken) -> dict[str, Any]:
    return {
        "id": token.id,
        "tenant": token.tenant,
        "role": token.role.value,
        "name": token.name,
        "job_id": token.job_id,
        "attempt": token.attempt,
        "created_at": token.created_at.isoformat(),
        "expires_at": token.expires_at.isoformat() if token.expires_at else None,
        "revoked": token.revoked,
    }


db_app.command("rollup")(db_rollup)


@db_app.command("upgrade")
def db_upgrade(ctx: typer.Context) -> None:
    """Apply the Alembic migrations to the configured database."""
    from scheduler.store.migrate import upgrade

    settings = cli_context(ctx).settings()
    upgrade(settings.database_url)
    console().print(f"database at {_redacted(settings.database_url)} is up to date")


def _redacted(url: str) -> str:
    """The URL without its password."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def demo(
    ctx: typer.Context,
    speed: Annotated[float, typer.Option(min=1, help="Scheduler clock speed-up.")] = 900.0,
    timeout_s: Annotated[float, typer.Option(min=10, help="Give up waiting after this.")] = 170,
    workdir: Annotated[
        Path | None,
        typer.Option(
            help="Where the demo's SQLite and checkpoints go (default: a new temp folder)."
        ),
    ] = None,
    jobs: Annotated[
        int, typer.Option(min=1, max=6, help="How many of the six demo jobs to submit.")
    ] = 6,
) -> None:
    """Run the whole system offline: submit real jobs, watch them shift, print the report."""
    from scheduler.demo import run_demo

    code = run_demo(
        cli_context(ctx).settings(),
        speed=speed,
        timeout_s=timeout_s,
        workdir=workdir,
        console=console(),
        jobs=jobs,
    )
    if code != 0:
        raise CliError("the demo's jobs did not all finish in time", exit_code=code)


REPORT_PERIODS = ("day", "week", "month")
REPORT_GROUPINGS = ("tenant", "region", "kind", "day", "week", "month", "group")
_RELATIVE = re.compile(r"-(\d+(?:\.\d+)?)([smhdw])")
_UNIT_S = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


def report_time(text: str | None, now: datetime, *, option: str) -> str | None:
    """``--from``/``--to`` as ISO-8601 UTC: ``now``, ``-7d``/``-12h``/``-30m``/``-2w`` before
    ``now``, or an ISO-8601 time (a bare date is midnight UTC; no offset means UTC).
    Raises CliError (exit 2) naming the accepted forms."""
    if text is None:
        return None
    value = text.strip().lower()
    if value == "now":
        return now.astimezone(UTC).isoformat()
    relative = _RELATIVE.fullmatch(value)
    if relative:
        seconds = float(relative.group(1)) * _UNIT_S[relative.group(2)]
        return (now - timedelta(seconds=seconds)).astimezone(UTC).isoformat()
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise CliError(
            f"{option} {text!r}: use now, -7d, -12h, -30m, -2w or an ISO-8601 time "
            "(2024-05-01, 2024-05-01T12:00Z)",
            exit_code=EXIT_USAGE,
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).isoformat()


def _one_of(value: str, accepted: tuple[str, ...], option: str) -> str:
    if value not in accepted:
        raise CliError(
            f"{option} {value!r}: use one of {', '.join(accepted)}", exit_code=EXIT_USAGE
        )
    return value


def report(
    ctx: typer.Context,
    fmt: Annotated[ReportFormat, typer.Option("--format", help="Output format.")] = (
        ReportFormat.TABLE
    ),
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the API's JSON (same as --format json).")
    ] = False,
    output: Annotated[Path | None, typer.Option(help="Write to this file, not stdout.")] = None,
    tenant: Annotated[str | None, typer.Option(help="One tenant (admins: any).")] = None,
    region: Annotated[str | None, typer.Option(help="Jobs that ran in this region.")] = None,
    group_id: Annotated[
        str | None, typer.Option("--group", help="Only this array or sweep.")
    ] = None,
    start: Annotated[
        str | None,
        typer.Option(
            "--from",
            "--start",
            help="Jobs started at/after: ISO-8601, now, or relative (-7d, -12h, -30m).",
        ),
    ] = None,
    end: Annotated[
        str | None,
        typer.Option("--to", "--end", help="Jobs started before: same forms as --from."),
    ] = None,
    period: Annotated[str, typer.Option(help="Periods of day, week or month.")] = "day",
    by: Annotated[
        str | None,
        typer.Option(help="One grouping: tenant, region, kind, day, week, month or group."),
    ] = None,
) -> None:
    """The savings report: emissions vs run-now-at-home baseline, per job and in total."""
    _one_of(period, REPORT_PERIODS, "--period")
    if by is not None:
        _one_of(by, REPORT_GROUPINGS, "--by")
    now = datetime.now(UTC)  # the shell's clock: relative times are the user's "now"
    params: dict[str, Any] = {
        "tenant": tenant,
        "region": region,
        "group_id": group_id,
        "from": report_time(start, now, option="--from"),
        "to": report_time(end, now, option="--to"),
        "period": period,
        "group_by": by,
    }
    if json_output:
        fmt = ReportFormat.JSON
    client = cli_context(ctx).client()
    path = "/v1/reports/savings"
    if fmt is ReportFormat.TABLE and output is None:
        print_report(client.get(path, {**params, "format": "json"}))
        return
    if fmt is ReportFormat.JSON:
        body = json.dumps(client.get(path, {**params, "format": "json"}), indent=2) + "\n"
    elif fmt is ReportFormat.TABLE:  # a table into a file: plain text, no terminal codes
        body = client.get_text(path, {**params, "format": "text"})
    else:
        body = client.get_text(path, {**params, "format": fmt.value})
    if output is None:
        typer.echo(body, nl=not body.endswith("\n"))
        return
    try:
        output.write_text(body, encoding="utf-8")
    except OSError as e:
        raise CliError(f"cannot write {output}: {e.strerror or e}") from None
    console().print(f"wrote {output}")


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.command("scheduler")(scheduler)
    app.add_typer(token_app, name="token")
    app.add_typer(db_app, name="db")
    app.command("demo")(demo)
    app.command("report")(report)
