"""How much Greenlight adds to running short jobs on Ray (issue 8, item 5).

One private local Ray head; on it, side by side in one run:

1. **Ray direct** — N trivial jobs (``python -c pass``, 1 CPU each) submitted straight to the
   head with ``JobSubmissionClient``; the clock stops when the last one is terminal (polled
   every ``--poll-s``).
2. **Greenlight** — the same N jobs through ``greenlight serve``'s parts in this process: the
   REST API (uvicorn), the periodic cycles (woken by submits, plans and dispatches), SQLite,
   the ``now`` policy, and the worker wrapper (``python -m workers.runner``, which reports
   energy to the API). The clock stops when the API shows the last job succeeded.

Both start from the first submit. The ratio Greenlight / direct is the overhead; the target is
within 10 % (1.10). The two runs alternate ``--rounds`` times to even out warm-up.

Run: ``.venv/bin/python bench/dispatch_overhead.py [--jobs 30] [--rounds 2]``; the table goes
to stdout (saved in ``bench/results/dispatch_overhead.txt``).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import requests
from ray.job_submission import JobStatus, JobSubmissionClient

from scheduler.bootstrap import RayEndpoint, build_service, start_api_thread
from scheduler.config import load_settings
from scheduler.dispatch.local_ray import LocalRayHead, free_port
from scheduler.domain import Role
from scheduler.periodic import start_periodic

ENTRYPOINT = f"{sys.executable} -c pass"
TIMEOUT_S = (3.0, 30.0)


def run_direct(client: JobSubmissionClient, jobs: int, poll_s: float) -> float:
    """Seconds from the first submit until all ``jobs`` are terminal on Ray."""
    tag = uuid.uuid4().hex[:8]
    start = time.monotonic()
    ids = [
        client.submit_job(
            entrypoint=ENTRYPOINT, submission_id=f"direct-{tag}-{i}", entrypoint_num_cpus=1
        )
        for i in range(jobs)
    ]
    pending = set(ids)
    while pending:
        for sid in list(pending):
            status = client.get_job_status(sid)
            if status.is_terminal():
                if status != JobStatus.SUCCEEDED:
                    raise RuntimeError(f"{sid} ended {status}")
                pending.discard(sid)
        if pending:
            time.sleep(poll_s)
    return time.monotonic() - start


def run_greenlight(url: str, secret: str, jobs: int, poll_s: float) -> float:
    """Seconds from the first submit until the API shows all ``jobs`` succeeded."""
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {secret}"
    body = {
        "name": "trivial",
        "kind": "training",
        "home_region": "eu-central",
        "entrypoint": ENTRYPOINT,
        "expected_duration_s": 60,
        "policy": "now",
        "resources": {"gpus": 0, "cpus": 1},
        "max_delay_s": 3600,
    }
    start = time.monotonic()
    ids = []
    for _ in range(jobs):
        answer = session.post(f"{url}/v1/jobs", json=body, timeout=TIMEOUT_S)
        answer.raise_for_status()
        ids.append(answer.json()["id"])
    pending = set(ids)
    while pending:
        for job_id in list(pending):
            state = session.get(f"{url}/v1/jobs/{job_id}", timeout=TIMEOUT_S).json()["state"]
            if state in {"succeeded", "failed", "cancelled"}:
                if state != "succeeded":
                    raise RuntimeError(f"{job_id} ended {state}")
                pending.discard(job_id)
        if pending:
            time.sleep(poll_s)
    return time.monotonic() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the Ray head")
    parser.add_argument("--poll-s", type=float, default=0.2)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="gl-bench-"))
    head = LocalRayHead(
        num_cpus=args.cpus,
        num_gpus=0,
        memory_mb=4096,
        object_store_memory_mb=256,
        auth_mode="disabled",
    ).start()
    server = cycles = None
    try:
        port = free_port()
        settings = load_settings(
            database_url=f"sqlite:///{workdir / 'greenlight.db'}", api_port=port
        )
        service = build_service(settings, ray=RayEndpoint(head.dashboard_url))
        service.refresh_forecasts()
        server = start_api_thread(service, "127.0.0.1", port)
        cycles = start_periodic(service, settings)
        secret, _ = service.create_token(tenant="bench", role=Role.USER)
        client = JobSubmissionClient(head.dashboard_url)
        run_direct(client, 2, args.poll_s)  # warm the head (worker processes, imports)
        direct: list[float] = []
        through: list[float] = []
        for _ in range(args.rounds):
            direct.append(run_direct(client, args.jobs, args.poll_s))
            through.append(run_greenlight(server.url, secret, args.jobs, args.poll_s))
        _print_table(args, direct, through)
    finally:
        if cycles is not None:
            cycles.shutdown(wait=False)
        if server is not None:
            server.stop()
        head.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def _print_table(args: argparse.Namespace, direct: list[float], through: list[float]) -> None:
    print(
        f"# dispatch_overhead  {datetime.now(UTC).isoformat(timespec='seconds')}  "
        f"{args.jobs} trivial jobs (python -c pass, 1 CPU), Ray head with {args.cpus} CPUs, "
        f"poll {args.poll_s} s"
    )
    print(f"{'round':>5}  {'Ray direct s':>12}  {'Greenlight s':>12}  {'ratio':>6}")
    for i, (d, g) in enumerate(zip(direct, through, strict=True), start=1):
        print(f"{i:>5}  {d:>12.2f}  {g:>12.2f}  {g / d:>6.2f}")
    d_med, g_med = statistics.median(direct), statistics.median(through)
    print(
        f"{'median':>5}  {d_med:>12.2f}  {g_med:>12.2f}  {g_med / d_med:>6.2f}"
        f"   target <= 1.10: {'met' if g_med / d_med <= 1.10 else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
