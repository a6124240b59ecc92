"""Job commands: submit, list, show, cancel, logs, events. Each parses, calls the API once,
and renders."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from scheduler.cli.arrays import expand, parse_array, submit_array
from scheduler.cli.context import cli_context
from scheduler.cli.deployment_view import print_deployment
from scheduler.cli.errors import CliError
from scheduler.cli.follow import exit_code_of, follow
from scheduler.cli.jobfile import load_job_file, merge_flags
from scheduler.cli.render import (
    console,
    fmt_num,
    fmt_time,
    print_events,
    print_job,
    print_jobs,
    print_json,
    text,
)
from scheduler.cli.shorthand import (
    default_name,
    load_runtime_env,
    parse_after,
    parse_deadline,
    parse_duration_s,
    resolve_working_dir,
    shorthand_fields,
)
from scheduler.domain import JobKind, JobState, Policy

JsonFlag = Annotated[bool, typer.Option("--json", help="Print the API's JSON instead of a table.")]
JobId = Annotated[str, typer.Argument(help="The job's id (see `greenlight list`).")]


def _env_vars(pairs: list[str] | None) -> dict[str, str] | None:
    if not pairs:
        return None
    env = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CliError(f"--env {pair!r}: expected KEY=VALUE")
        env[key] = value
    return env


def submit(
    ctx: typer.Context,
    command: Annotated[
        list[str] | None,
        typer.Argument(
            help="The entrypoint, after `--` (or use --entrypoint).", show_default=False
        ),
    ] = None,
    file: Annotated[
        Path | None,
        typer.Option("--file", "-f", help="A job.toml or job.json; flags override its values."),
    ] = None,
    entrypoint: Annotated[str | None, typer.Option(help="Shell command to run.")] = None,
    name: Annotated[str | None, typer.Option(help="A name for people.")] = None,
    kind: Annotated[JobKind | None, typer.Option(help="training or deployment.")] = None,
    home_region: Annotated[
        str | None, typer.Option(help="Where it would run without Greenlight (the baseline).")
    ] = None,
    region: Annotated[
        list[str] | None, typer.Option("--region", help="An allowed region (repeat; default: all).")
    ] = None,
    duration: Annotated[
        str | None,
        typer.Option(
            "--duration",
            "--duration-s",
            "-t",
            help="Expected run time: 3600, 90m, 2h, 1h30m or HH:MM:SS.",
        ),
    ] = None,
    deadline: Annotated[
        str | None,
        typer.Option(help="Finish by: +6h from now, or ISO-8601 (2024-05-01T18:00:00Z)."),
    ] = None,
    max_delay: Annotated[
        str | None,
        typer.Option("--max-delay", "--max-delay-s", help="Or: may start this late (6h)."),
    ] = None,
    gpus: Annotated[
        float | None,
        typer.Option(help="GPUs; a deployment may take a share of one (0.25)."),
    ] = None,
    cpus: Annotated[float | None, typer.Option(help="CPU cores.")] = None,
    memory_mb: Annotated[int | None, typer.Option(help="Memory, MiB.")] = None,
    priority: Annotated[int | None, typer.Option(help="Higher goes first on ties.")] = None,
    max_retries: Annotated[int | None, typer.Option(help="Retries after a failure.")] = None,
    policy: Annotated[Policy | None, typer.Option(help="Placement policy.")] = None,
    interruptible: Annotated[
        bool | None,
        typer.Option("--interruptible/--not-interruptible", help="May be split across windows."),
    ] = None,
    env: Annotated[list[str] | None, typer.Option(help="KEY=VALUE for the job (repeat).")] = None,
    working_dir: Annotated[
        str | None,
        typer.Option(help="Folder (or URI) shipped to the cluster; the job runs in it."),
    ] = None,
    runtime_env_file: Annotated[
        Path | None,
        typer.Option("--runtime-env", help="Ray runtime env (YAML/JSON/TOML): pip, env_vars..."),
    ] = None,
    tenant: Annotated[str | None, typer.Option(help="Submit for another tenant (admin).")] = None,
    after: Annotated[
        list[str] | None,
        typer.Option(
            help="Run after JOB succeeds; afterany:JOB after it ends; afterok:J1:J2 (repeat)."
        ),
    ] = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="Follow its logs; exit with the job's exit code.")
    ] = False,
    array: Annotated[
        str | None,
        typer.Option(help="One job per index: 0-999, 0-99:2, 1,5,7 (GREENLIGHT_ARRAY_INDEX)."),
    ] = None,
    json_output: JsonFlag = False,
) -> None:
    """Submit a job (or an array / the job file's grid: see scheduler/cli/arrays.py)."""
    payload = shorthand_fields(load_job_file(file), file) if file is not None else {}
    if command and entrypoint:
        raise CliError("give the entrypoint either after `--` or with --entrypoint, not both")
    runtime_env: dict[str, Any] = (
        load_runtime_env(runtime_env_file) if runtime_env_file is not None else {}
    )
    if (env_vars := _env_vars(env)) is not None:
        runtime_env["env_vars"] = {**runtime_env.get("env_vars", {}), **env_vars}
    if working_dir is not None:
        runtime_env["working_dir"] = resolve_working_dir(working_dir)
    flags: dict[str, Any] = {
        "entrypoint": shlex.join(command) if command else entrypoint,
        "name": name,
        "kind": kind.value if kind else None,
        "home_region": home_region,
        "allowed_regions": region or None,
        "expected_duration_s": None if duration is None else parse_duration_s(duration),
        "deadline": None if deadline is None else parse_deadline(deadline),
        "max_delay_s": None if max_delay is None else parse_duration_s(max_delay),
        "priority": priority,
        "max_retries": max_retries,
        "policy": policy.value if policy else None,
        "interruptible": interruptible,
        "tenant": tenant,
        "runtime_env": runtime_env,
        "after": parse_after(after) if after else None,
        "resources": {
            k: v
            for k, v in (("gpus", _count(gpus)), ("cpus", cpus), ("memory_mb", memory_mb))
            if v is not None
        },
    }
    body = merge_flags(payload, flags)
    if not body.get("entrypoint"):
        raise CliError("no entrypoint: give it after `--`, with --entrypoint, or in --file")
    body.setdefault("name", default_name(str(body["entrypoint"])))
    if array is not None or "grid" in body:
        indices = None if array is None else parse_array(array)
        made = submit_array(cli_context(ctx).client(), expand(body, indices))
        if json_output:
            print_json(made)
        else:
            console().print(f"submitted {made['count']} jobs in group {text(made['group_id'])}")
        return
    client = cli_context(ctx).client()
    job = client.post("/v1/jobs", body)
    if json_output and not wait:
        print_json(job)
        return
    if wait:
        sys.stderr.write(f"submitted {job['id']}\n")
        final = follow(client, job["id"])
        if json_output:
            print_json(final)
        raise typer.Exit(exit_code_of(final))
    out = console()
    out.print(f"submitted {text(job['id'])}: {job['state']}")
    plan = job.get("plan")
    if plan:
        out.print(
            f"planned in {text(plan['region'])} at {fmt_time(plan['planned_start'])}: "
            f"{fmt_num(plan['forecast_emissions_g'])} g expected vs "
            f"{fmt_num(plan['baseline_emissions_g'])} g run now at home "
            f"(saves {fmt_num(plan['expected_saving_g'])} g)"
        )


def list_jobs(
    ctx: typer.Context,
    state: Annotated[
        JobState | None,
        typer.Option(
            metavar="STATE",
            help="Only jobs in this state: " + ", ".join(s.value for s in JobState) + ".",
        ),
    ] = None,
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's (admin).")] = None,
    kind: Annotated[JobKind | None, typer.Option(help="Only this kind.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Page size.")] = 50,
    offset: Annotated[int, typer.Option(min=0, help="Skip this many (newest first).")] = 0,
    group: Annotated[str | None, typer.Option(help="Only this array or sweep.")] = None,
    json_output: JsonFlag = False,
) -> None:
    """List jobs, newest first."""
    page = (
        cli_context(ctx)
        .client()
        .get(
            "/v1/jobs",
            {
                "state": state.value if state else None,
                "tenant": tenant,
                "kind": kind.value if kind else None,
                "limit": limit,
                "offset": offset,
                "group_id": group,
            },
        )
    )
    if json_output:
        print_json(page)
    else:
        print_jobs(page)


def show(ctx: typer.Context, job_id: JobId, json_output: JsonFlag = False) -> None:
    """Show one job and its plan."""
    job = cli_context(ctx).client().get(f"/v1/jobs/{_quoted(job_id)}")
    if json_output:
        print_json(job)
    else:
        print_job(job)
        print_deployment(job)  # its endpoint and moves


def cancel(
    ctx: typer.Context,
    job_id: Annotated[str | None, typer.Argument(help="The job's id.")] = None,
    group: Annotated[str | None, typer.Option(help="Every unfinished job of a group.")] = None,
    json_output: JsonFlag = False,
) -> None:
    """Cancel a job that has not finished (or every one of a group)."""
    if (job_id is None) == (group is None):
        raise CliError("give a job id or --group, one of them")
    if group is not None:
        done = cli_context(ctx).client().post("/v1/jobs/cancel", params={"group_id": group})
        if json_output:
            print_json(done)
        else:
            console().print(f"cancelled {len(done['cancelled'])} jobs of {text(group)}")
        return
    job = cli_context(ctx).client().post(f"/v1/jobs/{_quoted(str(job_id))}/cancel")
    if json_output:
        print_json(job)
    else:
        console().print(f"{text(job['id'])}: {job['state']}")


def logs(
    ctx: typer.Context,
    job_id: JobId,
    follow_logs: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing until the job ends.")
    ] = False,
    json_output: JsonFlag = False,
) -> None:
    """Print the current attempt's output."""
    if follow_logs:
        final = follow(cli_context(ctx).client(), job_id)
        raise typer.Exit(exit_code_of(final))
    body = cli_context(ctx).client().get(f"/v1/jobs/{_quoted(job_id)}/logs")
    if json_output:
        print_json(body)
    else:
        typer.echo(body["logs"], nl=not body["logs"].endswith("\n"))


def events(ctx: typer.Context, job_id: JobId, json_output: JsonFlag = False) -> None:
    """Show a job's history: state changes and planning facts."""
    body = cli_context(ctx).client().get(f"/v1/jobs/{_quoted(job_id)}/events")
    if json_output:
        print_json(body)
    else:
        print_events(body["data"])


def _quoted(job_id: str) -> str:
    from urllib.parse import quote

    return quote(job_id, safe="")


def register(app: typer.Typer) -> None:
    app.command("submit")(submit)
    app.command("list")(list_jobs)
    app.command("show")(show)
    app.command("cancel")(cancel)
    # What `ray job stop` / `ray job status` users type.
    app.command("stop", help="Cancel a job (alias of cancel).")(cancel)
    app.command("status", help="Show one job (alias of show).")(show)
    app.command("logs")(logs)
    app.command("events")(events)


def _count(gpus: float | None) -> float | None:
    """A whole GPU count as an int (``1``, not ``1.0``, in the request), a share as it is."""
    return int(gpus) if gpus is not None and gpus.is_integer() else gpus
