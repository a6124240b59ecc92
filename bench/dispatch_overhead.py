"""How much Greenlight adds to running short jobs on Ray (issue 8, item 5).

One private local Ray head; on it, side by side in one run:

1. **Ray direct** — N trivial jobs (``python -c pass``, 1 CPU each) submitted straight to the
   head with ``JobSubmissionClient``; the clock stops at the end Ray records for the last
   one. The bench asks about each unfinished job every ``--poll-s`` (1 s): how often it
   looks neither rounds the time nor, at that pace, loads the head (it used to stop at the
   poll that saw the end, every 0.2 s; a listing of every job per look grew with the head's
   history and slowed later rounds).
2. **Greenlight** — the same N jobs through a real ``greenlight serve`` process pointed at
   the head (``--wiring split``, the default: its cycles in the scheduler process it spawns;
   ``--wiring inline``: ``serve --in-process-cycles``, the cycles in the API's process), on
   SQLite, with the ``now`` policy and the worker wrapper (``python -m workers.runner``, which
   reports energy to the API). The clock stops at the time the store recorded the last job
   succeeded (its event), so Greenlight's own lag in noticing the end counts.

3. **Ray + wrapper** — the Ray-direct run with each job inside the worker wrapper, reporting
   off: what the wrapper's own start costs, to tell it from the scheduler's share.

All start from the first submit. The ratio Greenlight / direct is the overhead; the target is
within 10 % (1.10). The three runs alternate ``--rounds`` times (6: each run goes first,
second and third twice). Their order turns each round: the head slows as its job history
grows (Ray direct took ~0.5 s longer each round of 90 jobs on 2026-12-07), so a fixed order
handicapped the run that always went last, Greenlight's. Below the
table: Greenlight's lags per job, ``greenlight serve``'s own CPU a round, and the machine's
busy CPU seconds in each run (on 2 cores every CPU second anyone spends is a job's).

Run: ``.venv/bin/python bench/dispatch_overhead.py [--jobs 30] [--rounds 6]``; the table goes
to stdout (saved in ``bench/results/dispatch_overhead.txt``).
"""

from __future__ import annotations

import argparse
import compileall
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

import workers
from scheduler.bootstrap import build_store, create_token
from scheduler.config import load_settings
from scheduler.dispatch.local_ray import LocalRayHead, free_port
from scheduler.domain import JobState, Role
from scheduler.store.sql import SqlStore

ENTRYPOINT = f"{sys.executable} -c pass"
# The same job inside the worker wrapper, reporting off (no API in its environment): Ray direct
# plus the wrapper's own start-up, to tell the scheduler's share from the wrapper's. It holds
# no GPU, as Greenlight's dispatch tells the wrapper of these jobs (so it loads no NVML).
WRAPPED = f"GREENLIGHT_GPUS=0 {sys.executable} -m workers.runner -- {ENTRYPOINT}"
TIMEOUT_S = (3.0, 30.0)


def run_direct(
    client: JobSubmissionClient,
    jobs: int,
    poll_s: float,
    out_ids: list[str] | None = None,
    entrypoint: str = ENTRYPOINT,
) -> float:
    """Seconds from the first submit until the last of ``jobs`` ended, by Ray's own record of
    its end (so how often this process looks does not round it, and one listing per look
    keeps the watching off the head's dashboard)."""
    tag = uuid.uuid4().hex[:8]
    start = time.time()
    ids = [
        client.submit_job(
            entrypoint=entrypoint, submission_id=f"direct-{tag}-{i}", entrypoint_num_cpus=1
        )
        for i in range(jobs)
    ]
    if out_ids is not None:
        out_ids.extend(ids)
    ended_s: dict[str, float] = {}
    while len(ended_s) < len(ids):
        time.sleep(poll_s)
        for sid in ids:
            if sid in ended_s:
                continue
            info = client.get_job_info(sid)
            if info.status.is_terminal():
                if info.status != JobStatus.SUCCEEDED:
                    raise RuntimeError(f"{sid} ended {info.status}")
                ended_s[sid] = (info.end_time or 0) / 1000.0
    return max(ended_s.values()) - start


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
    """Seconds from the first submit (over HTTP) until the store recorded the last of ``jobs``
    succeeded (its event's time; one count query per look, so watching does not load the API
    the workers report to)."""
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
    start = time.time()
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
            break
        time.sleep(poll_s)
    succeeded = [
        e.at for job_id in ids for e in store.events(job_id) if e.to_state is JobState.SUCCEEDED
    ]
    return max(succeeded).timestamp() - start


@contextlib.contextmanager
def greenlight_serve(
    database_url: str, port: int, ray_address: str, wiring: str, log: Path
) -> Iterator[tuple[str, int]]:
    """A ``greenlight serve`` process on ``database_url`` and ``ray_address``; yields its URL
    and pid."""
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
        yield url, proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def tree_cpu_s(root: int) -> float:
    """CPU seconds (user + system) used so far by process ``root`` and its live descendants."""
    tick = os.sysconf("SC_CLK_TCK")
    parent: dict[int, int] = {}
    used: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        pid = int(entry.name)
        parent[pid] = int(fields[1])
        used[pid] = (int(fields[11]) + int(fields[12])) / tick
    total = 0.0
    for pid, cpu_s in used.items():
        p = pid
        while p > 1 and p != root:
            p = parent.get(p, 0)
        if p == root:
            total += cpu_s
    return total


# Who spends the machine's CPU, by command line (first match wins); "jobs and the rest" is the
# machine's busy time less these: job supervisors and drivers that came and went, the wrapper,
# this bench.
_PARTS = (
    ("gcs", "gcs_server"),
    ("raylet", "raylet"),
    ("dashboard", "dashboard.py"),
    ("ray agents", "/dashboard/agent.py"),
    ("ray agents", "runtime_env/agent"),
    ("ray agents", "log_monitor.py"),
)


def parts_cpu_s(serve_pid: int) -> dict[str, float]:
    """CPU seconds used so far by the Ray head's long-lived processes (with their reaped
    children's), by part, and by the ``greenlight serve`` tree."""
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = dict.fromkeys((name for name, _ in _PARTS), 0.0)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        used_s = sum(int(x) for x in fields[11:15]) / tick
        name = next((n for n, needle in _PARTS if needle in cmdline), None)
        if name is not None:
            out[name] += used_s
    out["greenlight serve"] = tree_cpu_s(serve_pid)
    return out


def busy_cpu_s() -> float:
    """CPU seconds the whole machine has been busy (not idle or waiting on I/O) since boot."""
    ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle, iowait = ticks[3], ticks[4]
    return (sum(ticks[:8]) - idle - iowait) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the Ray head")
    parser.add_argument("--poll-s", type=float, default=1.0)
    parser.add_argument("--wiring", choices=("split", "inline"), default="split")
    args = parser.parse_args()
    # The worker wrapper starts before every job: run it as installed, from bytecode. A wheel
    # install compiles it, and Python caches it on first import, except where, as on the
    # machines this ran on, PYTHONDONTWRITEBYTECODE is set: then every start compiled
    # workers/ from source again (~13 ms a job) and the bench measured that, not the wrapper.
    compileall.compile_dir(str(Path(workers.__file__).parent), quiet=1)

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
        ) as (url, serve_pid):
            client = JobSubmissionClient(head.dashboard_url)
            run_direct(client, 2, args.poll_s)  # warm the head (worker processes, imports)
            direct: list[float] = []
            wrapped: list[float] = []
            through: list[float] = []
            direct_ids: list[str] = []
            through_ids: list[str] = []
            serve_cpu_s: list[float] = []
            busy_s: dict[str, list[float]] = {"direct": [], "wrapped": [], "greenlight": []}
            by_part: dict[str, list[dict[str, float]]] = {name: [] for name in busy_s}
            names = list(busy_s)
            for round_no in range(args.rounds):
                turn = round_no % len(names)
                for name in names[turn:] + names[:turn]:
                    b0, p0 = busy_cpu_s(), parts_cpu_s(serve_pid)
                    if name == "direct":
                        direct.append(run_direct(client, args.jobs, args.poll_s, direct_ids))
                    elif name == "wrapped":
                        wrapped.append(
                            run_direct(client, args.jobs, args.poll_s, entrypoint=WRAPPED)
                        )
                    else:
                        through.append(
                            run_greenlight(url, secret, store, args.jobs, args.poll_s, through_ids)
                        )
                    b1, p1 = busy_cpu_s(), parts_cpu_s(serve_pid)
                    busy_s[name].append(b1 - b0)
                    used = {part: p1[part] - p0.get(part, 0.0) for part in p1}
                    used["jobs and the rest"] = (b1 - b0) - sum(used.values())
                    by_part[name].append(used)
                serve_cpu_s.append(by_part["greenlight"][-1]["greenlight serve"])
        _print_table(args, direct, wrapped, through)
        lag_in, lag_out = greenlight_lags(store, client, through_ids)
        ray_direct = statistics.mean(ray_durations(client, direct_ids))
        ray_through = statistics.mean(
            ray_durations(client, [store.get_job(i).submission_id or "" for i in through_ids])
        )
        print(
            f"where the time goes (means per job): submit -> dispatched {lag_in:.2f} s; "
            f"Ray end -> succeeded {lag_out:.2f} s; run on Ray {ray_direct:.2f} s direct vs "
            f"{ray_through:.2f} s with the worker wrapper (python -m workers.runner); "
            f"greenlight serve's own CPU {statistics.median(serve_cpu_s):.2f} s a round "
            f"(API and scheduler processes, median)"
        )
        print(
            "machine CPU busy a round (median): "
            + ", ".join(f"{name} {statistics.median(v):.1f} s" for name, v in busy_s.items())
        )
        _print_parts(by_part)
    finally:
        head.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def _print_parts(by_part: dict[str, list[dict[str, float]]]) -> None:
    """CPU seconds a round (median) by who spent them, one column per run."""
    runs = list(by_part)
    parts = list(by_part[runs[0]][0])
    print(f"{'CPU s a round, by part':>24}  " + "  ".join(f"{r:>10}" for r in runs))
    for part in parts:
        cells = [statistics.median(u[part] for u in by_part[r]) for r in runs]
        print(f"{part:>24}  " + "  ".join(f"{c:>10.2f}" for c in cells))


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
    for name, d, w, g in rows:
        print(f"{name:>6}  {d:>12.2f}  {w:>13.2f}  {g:>12.2f}  {g / d:>9.2f}  {g / w:>10.2f}")
    # The ratio of each round, whose three runs ran back to back on the same head, then the
    # median of those: the head slows as its job history grows, so medians of the columns
    # would compare runs of different rounds.
    by_direct = statistics.median(g / d for d, g in zip(direct, through, strict=True))
    by_wrapped = statistics.median(g / w for w, g in zip(wrapped, through, strict=True))
    print(
        f"{'median':>6}  {statistics.median(direct):>12.2f}  {statistics.median(wrapped):>13.2f}"
        f"  {statistics.median(through):>12.2f}  {by_direct:>9.2f}  {by_wrapped:>10.2f}"
    )
    verdict = "met" if by_direct <= 1.10 else "NOT met"
    print(f"target: Greenlight / Ray direct <= 1.10 (median of the rounds' ratios): {verdict}")


if __name__ == "__main__":
    main()
