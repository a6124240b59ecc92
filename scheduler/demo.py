"""``greenlight demo``: the whole system on the embedded default, in about two minutes.

SQLite in a fresh folder, the replay provider over real Electricity Maps traces, a local Ray
head; the scheduler clock runs ``speed`` times faster than the wall so a day of grid passes in
a minute and a half. Real training jobs are submitted through the real REST API.
"""

from __future__ import annotations

import dataclasses
import socket
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from scheduler.config import Settings
from scheduler.domain import Role

if TYPE_CHECKING:
    from scheduler.service import GreenlightService


@dataclass(frozen=True, slots=True)
class DemoJob:
    name: str
    home_region: str
    deadline_h: float
    allowed: tuple[str, ...] = ()
    steps: int = 60


# Varied slack: an urgent job that must run now, a few with hours to spare, one pinned to its
# home region (time-shifting only), one free to move anywhere.
DEMO_JOBS = (
    DemoJob(name="urgent-hotfix", home_region="us-west", deadline_h=4.5),
    DemoJob(name="bert-finetune", home_region="eu-central", deadline_h=10),
    DemoJob(
        name="nightly-retrain", home_region="eu-central", deadline_h=18, allowed=("eu-central",)
    ),
    DemoJob(name="resnet-sweep", home_region="us-west", deadline_h=14),
    DemoJob(name="llm-eval", home_region="eu-south", deadline_h=20),
    DemoJob(name="ablation-study", home_region="us-west", deadline_h=22),
)
# A job's wall time on a small machine is mostly Python and torch start-up (~15-20 s); at x900
# that is 4-5 scheduler hours, so the jobs declare 4 h to keep plans honest.
EXPECTED_DURATION_S = 4 * 3600
TERMINAL = {"succeeded", "failed", "cancelled"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_demo(
    settings: Settings,
    *,
    speed: float = 900.0,
    timeout_s: float = 170.0,
    workdir: Path | None = None,
    console: Console | None = None,
    jobs: int = len(DEMO_JOBS),
) -> int:
    """Run the demo with the first ``jobs`` demo jobs; returns a process exit code (0 when
    every job finished)."""
    from scheduler.bootstrap import build_service, ray_cluster, scaled_clock, start_api_thread
    from scheduler.logs import configure_logging
    from scheduler.periodic import start_periodic

    console = console or Console()
    workdir = workdir or Path(tempfile.mkdtemp(prefix="greenlight-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    settings = settings.model_copy(
        update={
            "database_url": f"sqlite:///{workdir / 'greenlight.db'}",
            "api_port": port,
            "api_host": "127.0.0.1",
            "api_url": None,
            "plan_interval_s": 1800.0,
            "refresh_interval_s": 3600.0,
            "dispatch_interval_s": 0.5,
            "reconcile_interval_s": 0.5,
        }
    )
    configure_logging("text", "WARNING")
    console.print(f"[bold]Greenlight demo[/] — workdir {workdir}, clock x{speed:g}")
    with console.status("starting a local Ray head on loopback..."):
        ray = ray_cluster(settings)
        address = ray.__enter__()
    try:
        service = build_service(settings, clock=scaled_clock(speed), ray=address)
        # The cluster's queueing happens in wall time: give it its usual 10 wall minutes.
        service.ctx.config = dataclasses.replace(
            service.ctx.config, pending_timeout_s=600.0 * speed
        )
        api = start_api_thread(service, "127.0.0.1", port)
        service.refresh_forecasts()
        cycles = start_periodic(service, settings, scale=speed)
        try:
            secret, _ = service.create_token(tenant="demo", role=Role.USER, name="demo")
            ids = _submit_all(api.url, secret, service, workdir, DEMO_JOBS[:jobs])
            _show_plans(console, api.url, secret, ids)
            finished = _wait(console, api.url, secret, ids, service, timeout_s)
            service.reconcile()
            _show_report(console, service, workdir)
        finally:
            cycles.shutdown(wait=False)
            api.stop()
    finally:
        ray.__exit__(None, None, None)
    return 0 if finished else 1


def _submit_all(
    url: str, secret: str, service: GreenlightService, workdir: Path, demo_jobs: tuple[DemoJob, ...]
) -> list[str]:
    now = service.ctx.clock.now()
    ids = []
    for job in demo_jobs:
        entry = (
            f"{sys.executable} -m workers.examples.train_mlp --steps {job.steps} "
            f"--checkpoint {workdir / (job.name + '.pt')}"
        )
        body = {
            "name": job.name,
            "kind": "training",
            "entrypoint": entry,
            "home_region": job.home_region,
            "allowed_regions": list(job.allowed),
            "expected_duration_s": EXPECTED_DURATION_S,
            "resources": {"gpus": 0, "cpus": 1},
            "deadline": (now + timedelta(hours=job.deadline_h)).isoformat(),
        }
        r = requests.post(
            f"{url}/v1/jobs", json=body, timeout=30, headers={"Authorization": f"Bearer {secret}"}
        )
        r.raise_for_status()
        ids.append(r.json()["id"])
    return ids


def _get_jobs(url: str, secret: str, ids: list[str]) -> list[dict[str, Any]]:
    headers = {"Authorization": f"Bearer {secret}"}
    return [requests.get(f"{url}/v1/jobs/{i}", headers=headers, timeout=10).json() for i in ids]


def _show_plans(console: Console, url: str, secret: str, ids: list[str]) -> None:
    table = Table(title="Plans (forecast)")
    for col in (
        "job",
        "home",
        "deadline",
        "planned region",
        "planned start",
        "forecast g",
        "run-now g",
    ):
        table.add_column(col)
    for job in _get_jobs(url, secret, ids):
        plan = job.get("plan") or {}
        table.add_row(
            job["name"],
            job["home_region"],
            job["deadline"][:16],
            plan.get("region", "-"),
            (plan.get("planned_start") or "-")[:16],
            f"{plan.get('forecast_emissions_g', 0):.3f}",
            f"{plan.get('baseline_emissions_g', 0):.3f}",
        )
    console.print(table)


def _wait(
    console: Console,
    url: str,
    secret: str,
    ids: list[str],
    service: GreenlightService,
    timeout_s: float,
) -> bool:
    deadline = time.monotonic() + timeout_s
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} done"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("waiting", total=len(ids))
        while time.monotonic() < deadline:
            jobs = _get_jobs(url, secret, ids)
            states = [j["state"] for j in jobs]
            done = sum(s in TERMINAL for s in states)
            now = service.ctx.clock.now()
            counts = ", ".join(f"{s} {states.count(s)}" for s in sorted(set(states)))
            progress.update(
                task, completed=done, description=f"scheduler time {now:%Y-%m-%d %H:%M}Z · {counts}"
            )
            if done == len(ids):
                return True
            time.sleep(0.5)
    console.print("[yellow]timed out waiting for every job; reporting what finished[/]")
    return False


def _show_report(console: Console, service: GreenlightService, workdir: Path) -> None:
    from scheduler.domain import Principal
    from scheduler.reports.render import report_to_html, report_to_text

    admin = Principal(tenant="demo", role=Role.ADMIN, token_id="demo")
    report = service.savings_report(admin)
    console.print(report_to_text(report))
    html = workdir / "savings.html"
    html.write_text(report_to_html(report))
    console.print(f"HTML report: {html}")
