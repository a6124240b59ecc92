"""How much Greenlight adds to running short jobs on Ray (issue 8, item 5).

One private local Ray head; on it, side by side in one run:

1. **Ray direct** — N trivial jobs (``python -c pass``, 1 CPU each) submitted straight to the
   head with ``JobSubmissionClient``; the clock stops when the last one is terminal (polled
   every ``--poll-s``).
2. **Greenlight** — the same N jobs through a real ``greenlight serve`` process pointed at
   the head (``--wiring split``, the default: its cycles in the scheduler process it spawns;
   ``--wiring inline``: ``serve --in-process-cycles``, the cycles in the API's process), on
   SQLite, with the ``now`` policy and the worker wrapper (``python -m workers.runner``, which
   reports energy to the API). The clock stops when the store shows the last job succeeded.

Both start from the first submit. The ratio Greenlight / direct is the overhead; the target is
within 10 % (1.10). The two runs alternate ``--rounds`` times to even out warm-up.

Run: ``.venv/bin/python bench/dispatch_overhead.py [--jobs 30] [--rounds 2]``; the table goes
to stdout (saved in ``bench/results/dispatch_overhead.txt``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import requests
from ray.job_submission import JobStatus, JobSubmissionClient

from scheduler.bootstrap import build_store, create_token
from scheduler.config import load_settings
from scheduler.dispatch.local_ray import LocalRayHead, free_port
from scheduler.domain import JobState, Role
from scheduler.store.sql import SqlStore

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
            entrypoint=entrypoint, submission_id=f"direct-{tag}-{i}", entrypoint_num_cpus=1
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
    store: SqlStore, client: JobSubmissionClient, ids: list[str]
) -> tuple[float, float]:
    """Mean seconds from submit to the dispatch event, and from Ray's end to succeeded."""
    to_dispatch, to_done = [], []
    for job_id in ids:
        events = store.events(job_id)
        submitted = events[0].at
        dispatched = next(e.at for e in events if e.kind == "dispatch")
        done = next(e.at for e in events if e.to_state is JobState.SUCCEEDED)
        info = client.get_job_info(store.get_job(job_id).submission_id or "")
        to_dispatch.append((dispatched - submitted).total_seconds())
        if info.end_time:
            ended = datetime.fromtimestamp(info.end_time / 1000.0, tz=UTC)
            to_done.append((done - ended).total_seconds())
    return statistics.mean(to_dispatch), statistics.mean(to_done)


def run_greenlight(
    url: str,
    secret: str,
    store: SqlStore,
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


@contextlib.contextmanager
def greenlight_serve(
    database_url: str, port: int, ray_address: str, wiring: str, log: Path
) -> Iterator[str]:
    """A ``greenlight serve`` process on ``database_url`` and ``ray_address``; yields its URL."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GREENLIGHT_")}
    env.update(
        GREENLIGHT_DATABASE_URL=database_url,
        GREENLIGHT_API_PORT=str(port),
        GREENLIGHT_RAY_ADDRESS=ray_address,
        GREENLIGHT_LOG_LEVEL="WARNING",
    )
    args = ["serve"] + (["--in-process-cycles"] if wiring == "inline" else [])
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "scheduler.cli.main", *args], env=env, stderr=out
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"serve exited: {log.read_text()[-2000:]}")
            with contextlib.suppress(requests.RequestException):
                health = requests.get(f"{url}/healthz", timeout=2).json()
                if wiring == "inline" or health.get("scheduler", {}).get("status") == "ok":
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"serve did not come up: {log.read_text()[-2000:]}")
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the Ray head")
    parser.add_argument("--poll-s", type=float, default=0.2)
    parser.add_argument("--wiring", choices=("split", "inline"), default="split")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="gl-bench-"))
    head = LocalRayHead(
        num_cpus=args.cpus,
        num_gpus=0,
        memory_mb=4096,
        object_store_memory_mb=256,
        auth_mode="disabled",
    ).start()
    try:
        database_url = f"sqlite:///{workdir / 'greenlight.db'}"
        settings = load_settings(database_url=database_url)
        secret, _ = create_token(settings, tenant="bench", role=Role.USER)  # migrates
        store = build_store(settings, migrate=False)  # this process only counts and reads
        with greenlight_serve(
            database_url, free_port(), head.dashboard_url, args.wiring, workdir / "serve.log"
        ) as url:
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
                    run_greenlight(url, secret, store, args.jobs, args.poll_s, through_ids)
                )
        _print_table(args, direct, wrapped, through)
        lag_in, lag_out = greenlight_lags(store, client, through_ids)
        ray_direct = statistics.mean(ray_durations(client, direct_ids))
        ray_through = statistics.mean(
            ray_durations(client, [store.get_job(i).submission_id or "" for i in through_ids])
        )
        print(
            f"where the time goes (means per job): submit -> dispatched {lag_in:.2f} s; "
            f"Ray end -> succeeded {lag_out:.2f} s; run on Ray {ray_direct:.2f} s direct vs "
            f"{ray_through:.2f} s with the worker wrapper (python -m workers.runner)"
        )
    finally:
        head.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def _print_table(
    args: argparse.Namespace, direct: list[float], wrapped: list[float], through: list[float]
) -> None:
    print(
        f"# dispatch_overhead  {datetime.now(UTC).isoformat(timespec='seconds')}  "
        f"{args.jobs} trivial jobs (python -c pass, 1 CPU), Ray head with {args.cpus} CPUs, "
        f"poll {args.poll_s} s, wiring {args.wiring}, load average "
        f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}"
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
