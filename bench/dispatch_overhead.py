"""How much Greenlight adds to running short jobs on Ray (issue 8, item 5).

One private local Ray head; on it, side by side in one run:

1. **Ray direct** — N trivial jobs (``python -c pass``, 1 CPU each) submitted straight to the
   head with ``JobSubmissionClient``; the clock stops when the last one is terminal (polled
   every ``--poll-s``).
2. **Greenlight** — the same N jobs through ``greenlight serve``'s parts in this process: the
   REST API (uvicorn), the periodic cycles (woken by submits, plans and dispatches), SQLite,
   the ``now`` policy, and the worker wrapper (``python -m workers.runner``, which reports
   energy to the API). The clock stops when the store shows the last job succeeded.

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
from scheduler.domain import JobState, Role
from scheduler.periodic import start_periodic
from scheduler.service import GreenlightService

ENTRYPOINT = f"{sys.executable} -c pass"
# The same job inside the worker wrapper, reporting off (no API in its environment): Ray direct
# plus the wrapper's own start-up, to tell the scheduler's share from the wrapper's.
WRAPPED = f"{sys.executable} -m workers.runner -- {ENTRYPOINT}"
TIMEOUT_S = (3.0, 30.0)


def run_direct(
    client: JobSubmissionClient,
    jobs: int,
    poll_s: float,
    out_ids: list[str] | None = None,
    entrypoint: str = ENTRYPOINT,
) -> float:
    """Seconds from the first submit until all ``jobs`` are terminal on Ray."""
    tag = uuid.uuid4().hex[:8]
    start = time.monotonic()
    ids = [
        client.submit_job(
            entrypoint=ENTRYPOINT, submission_id=f"direct-{tag}-{i}", entrypoint_num_cpus=1
        )
        for i in range(jobs)
    ]
    if out_ids is not None:
        out_ids.extend(ids)
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


def ray_durations(client: JobSubmissionClient, ids: list[str]) -> list[float]:
    """Seconds each submission ran on Ray (accepted to terminal)."""
    out = []
    for sid in ids:
        info = client.get_job_info(sid)
        if info.start_time and info.end_time:
            out.append((info.end_time - info.start_time) / 1000.0)
    return out


def greenlight_lags(
    service: GreenlightService, client: JobSubmissionClient, ids: list[str]
) -> tuple[float, float]:
    """Mean seconds from submit to the dispatch event, and from Ray's end to succeeded."""
    to_dispatch, to_done = [], []
    for job_id in ids:
        events = service.ctx.store.events(job_id)
        submitted = events[0].at
        dispatched = next(e.at for e in events if e.kind == "dispatch")
        done = next(e.at for e in events if e.to_state is JobState.SUCCEEDED)
        info = client.get_job_info(service.ctx.store.get_job(job_id).submission_id or "")
        to_dispatch.append((dispatched - submitted).total_seconds())
        if info.end_time:
            ended = datetime.fromtimestamp(info.end_time / 1000.0, tz=UTC)
            to_done.append((done - ended).total_seconds())
    return statistics.mean(to_dispatch), statistics.mean(to_done)


def run_greenlight(
    url: str,
    secret: str,
    service: GreenlightService,
    jobs: int,
    poll_s: float,
    out_ids: list[str] | None = None,
) -> float:
    """Seconds from the first submit (over HTTP) until the store shows all ``jobs`` succeeded
    (one count query per poll, so watching does not load the API the workers report to)."""
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
    store = service.ctx.store
    done_before = store.count_by_state()[JobState.SUCCEEDED]
    start = time.monotonic()
    ids = []
    for _ in range(jobs):
        answer = session.post(f"{url}/v1/jobs", json=body, timeout=TIMEOUT_S)
        answer.raise_for_status()
        ids.append(answer.json()["id"])
    if out_ids is not None:
        out_ids.extend(ids)
    while True:
        counts = store.count_by_state()
        if counts[JobState.FAILED] or counts[JobState.CANCELLED]:
            raise RuntimeError(f"a job did not succeed: {counts}")
        if counts[JobState.SUCCEEDED] - done_before >= jobs:
            return time.monotonic() - start
        time.sleep(poll_s)


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
        wrapped: list[float] = []
        through: list[float] = []
        direct_ids: list[str] = []
        through_ids: list[str] = []
        for _ in range(args.rounds):
            direct.append(run_direct(client, args.jobs, args.poll_s, direct_ids))
            wrapped.append(run_direct(client, args.jobs, args.poll_s, entrypoint=WRAPPED))
            through.append(
                run_greenlight(server.url, secret, service, args.jobs, args.poll_s, through_ids)
            )
        _print_table(args, direct, wrapped, through)
        lag_in, lag_out = greenlight_lags(service, client, through_ids)
        ray_direct = statistics.mean(ray_durations(client, direct_ids))
        ray_through = statistics.mean(
            ray_durations(
                client, [service.ctx.store.get_job(i).submission_id or "" for i in through_ids]
            )
        )
        sample = service.ctx.store.get_job(through_ids[-1]).submission_id or ""
        tail = client.get_job_logs(sample).strip().splitlines()[-6:]
        print("\n".join(f"  log {sample}: {line[:160]}" for line in tail), file=sys.stderr)
        print(
            f"where the time goes (means per job): submit -> dispatched {lag_in:.2f} s; "
            f"Ray end -> succeeded {lag_out:.2f} s; run on Ray {ray_direct:.2f} s direct vs "
            f"{ray_through:.2f} s with the worker wrapper (python -m workers.runner)"
        )
    finally:
        if cycles is not None:
            cycles.shutdown(wait=False)
        if server is not None:
            server.stop()
        head.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def _print_table(
    args: argparse.Namespace, direct: list[float], wrapped: list[float], through: list[float]
) -> None:
    print(
        f"# dispatch_overhead  {datetime.now(UTC).isoformat(timespec='seconds')}  "
        f"{args.jobs} trivial jobs (python -c pass, 1 CPU), Ray head with {args.cpus} CPUs, "
        f"poll {args.poll_s} s"
    )
    print(
        f"{'round':>6}  {'Ray direct s':>12}  {'Ray+wrapper s':>13}  {'Greenlight s':>12}  "
        f"{'GL/direct':>9}  {'GL/wrapped':>10}"
    )
    rows = [
        (str(i), d, w, g)
        for i, (d, w, g) in enumerate(zip(direct, wrapped, through, strict=True), start=1)
    ]
    rows.append(
        (
            "median",
            statistics.median(direct),
            statistics.median(wrapped),
            statistics.median(through),
        )
    )
    for name, d, w, g in rows:
        print(f"{name:>6}  {d:>12.2f}  {w:>13.2f}  {g:>12.2f}  {g / d:>9.2f}  {g / w:>10.2f}")
    ratio = rows[-1][3] / rows[-1][1]
    print(f"target: Greenlight / Ray direct <= 1.10: {'met' if ratio <= 1.10 else 'NOT met'}")


if __name__ == "__main__":
    main()
