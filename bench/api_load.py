"""Admission at scale: Greenlight's API under load, beside a bare FastAPI + SQLAlchemy endpoint.

Starts ``greenlight serve`` (its cycles included; Ray pointed at a closed port so nothing runs)
on PostgreSQL (127.0.0.1:5432, database ``test``, a fresh schema) and on SQLite, drives it from
a separate process (asyncio, one keep-alive HTTP/1.1 connection per client, requests written
as bytes: a client library's CPU would be taken from the server on 2 cores) and prints one table:

* single submits/s with p50/p99 at 1, 8 and 32 clients, with the queue empty and with
  ``--queued`` (100,000) jobs already queued (bulk-loaded through the store);
* batch submission, jobs/s (``POST /v1/jobs/batch`` of 10,000);
* the plan cycle's time at a tenth of ``--queued`` and at ``--queued``: the first cycle of a
  process over jobs bulk-loaded unplanned (it writes a plan for each), the next, and the first
  cycle of another process over the same queue (a restart: plans stored);
* ``GET /v1/jobs/{id}`` p99 while a cycle runs;
* ``GET /v1/jobs?state=pending&limit=50`` p99 (offset and keyset pages) over ``--stored``
  (1,000,000) jobs, and the admin savings report over that many finished jobs;
* the bare endpoint (``bench/bare_app.py``) at 32 clients, and Greenlight's rate as a share.

``--quick`` scales it down (10,000 queued, 100,000 stored, 4 s per load phase). The full run
takes long on 2 cores (bulk loads dominate). Usage::

    .venv/bin/python bench/api_load.py [--quick] [--backends postgresql,sqlite] [--out FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from scheduler.bootstrap import build_service  # noqa: E402
from scheduler.config import load_settings  # noqa: E402
from scheduler.domain import (  # noqa: E402
    Job,
    JobEvent,
    JobKind,
    JobSpec,
    JobState,
    Resources,
    Role,
)
from scheduler.store.jobs import copy_rows  # noqa: E402
from scheduler.store.rows import event_values, job_values  # noqa: E402
from scheduler.store.sql import SqlStore  # noqa: E402
from scheduler.store.tables import energy_reports, job_events, jobs  # noqa: E402

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
# The shipped default (three replay regions), with capacity for the queues benchmarked here:
# 8 GPUs a region would leave 100,000 one-GPU jobs mostly late, and time the deadline repair.
REGION_GPUS = 4096


def bench_config(folder: Path) -> Path:
    text = (ROOT / "configs" / "default.toml").read_text()
    path = folder / "bench.toml"
    path.write_text(text.replace("gpus = 8", f"gpus = {REGION_GPUS}"))
    return path


REGIONS = ("eu-central", "eu-south", "us-west")
CHUNK = 5_000
CONFIG = ROOT / "configs" / "default.toml"


def job_body(i: int) -> dict[str, Any]:
    return {
        "name": f"bench-{i}",
        "entrypoint": "python train.py --epochs 3",
        "home_region": REGIONS[i % 3],
        "expected_duration_s": 3600,
        "max_delay_s": 36 * 3600,
        "resources": {"gpus": 1, "cpus": 4, "memory_mb": 8192},
        "runtime_env": {"env_vars": {"SEED": str(i)}},
    }


# --- the load generator (a separate process) ---------------------------------------------------


class _Connection:
    """One keep-alive HTTP/1.1 connection, requests written as bytes and responses read by
    their Content-Length: a few microseconds of the generator's CPU per request where an HTTP
    client library spends hundreds, CPU the server under test shares on a 2-core box."""

    def __init__(self, host: str, port: int, headers: bytes) -> None:
        self._host, self._port, self._headers = host, port, headers
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        if self._reader is None or self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self._host, self._port)
        head = f"{method} {path} HTTP/1.1\r\n".encode() + self._headers
        if body is not None:
            head += b"content-type: application/json\r\ncontent-length: %d\r\n" % len(body)
        self._writer.write(head + b"\r\n" + (body or b""))
        lines = (await self._reader.readuntil(b"\r\n\r\n")).split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        fields = dict(line.split(b":", 1) for line in lines[1:] if b":" in line)
        fields = {k.strip().lower(): v.strip() for k, v in fields.items()}
        if fields.get(b"transfer-encoding", b"").lower() == b"chunked":
            data = b""
            while size := int((await self._reader.readline()).strip(), 16):
                data += await self._reader.readexactly(size)
                await self._reader.readline()
            await self._reader.readline()
        else:
            data = await self._reader.readexactly(int(fields.get(b"content-length", b"0")))
        if fields.get(b"connection", b"").lower() == b"close":
            await self.close()
        return status, data

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError):
                await self._writer.wait_closed()
        self._reader = self._writer = None


async def _drive(spec: dict[str, Any]) -> dict[str, Any]:
    url, clients, seconds = spec["url"], spec["clients"], spec["seconds"]
    host, port = url.removeprefix("http://").rstrip("/").rsplit(":", 1)
    headers = b"host: %s\r\n" % host.encode()
    if spec.get("token"):
        headers += f"authorization: Bearer {spec['token']}\r\n".encode()
    latencies: list[float] = []
    errors = 0
    stop_at = time.perf_counter() + seconds

    async def worker(k: int) -> None:
        nonlocal errors
        connection = _Connection(host, int(port), headers)
        i = k * 1_000_000
        try:
            while time.perf_counter() < stop_at:
                i += 1
                if spec["mode"] == "get":
                    paths = spec["paths"]
                    method, path, body = "GET", paths[i % len(paths)], None
                elif spec["mode"] == "batch":
                    jobs = [job_body(i * 10_000 + j) for j in range(spec["batch"])]
                    method, path, body = "POST", spec["path"], json.dumps({"jobs": jobs}).encode()
                else:
                    method, path, body = "POST", spec["path"], json.dumps(job_body(i)).encode()
                t0 = time.perf_counter()
                status, data = await connection.request(method, path, body)
                latencies.append(time.perf_counter() - t0)
                if status >= 300:
                    errors += 1
                    if errors < 3:
                        print(status, data[:300].decode(errors="replace"), file=sys.stderr)
        finally:
            await connection.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker(k) for k in range(clients)))
    wall = time.perf_counter() - started
    latencies.sort()
    n = len(latencies)
    return {
        "n": n,
        "errors": errors,
        "rate": n / wall,
        "p50_ms": 1000 * latencies[n // 2] if n else float("nan"),
        "p99_ms": 1000 * latencies[min(n - 1, int(n * 0.99))] if n else float("nan"),
    }


def drive(**spec: Any) -> dict[str, Any]:
    """Run the load generator in its own interpreter and return its figures."""
    done = subprocess.run(
        [sys.executable, __file__, "_drive", json.dumps(spec)],
        capture_output=True,
        text=True,
        check=False,
        timeout=spec["seconds"] + 600,
    )
    if done.returncode != 0:
        raise RuntimeError(f"load generator failed: {done.stderr[-2000:]}")
    if done.stderr.strip():
        print(done.stderr.strip()[-600:], file=sys.stderr)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# --- servers -----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_up(url: str, seconds: float = 120.0) -> None:
    import httpx2 as httpx

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2.0).status_code < 500:
                return
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not come up")


@contextlib.contextmanager
def refusing_ray() -> Iterator[str]:
    """A "Ray" that answers every request 503: regions stay up (it answers), capacity stays as
    configured, and a job that comes due is refused and fails, so nothing runs on this box."""
    import http.server
    import threading

    class Refuse(http.server.BaseHTTPRequestHandler):
        def _no(self) -> None:
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_POST = do_PUT = do_DELETE = _no

        def log_message(self, *_args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Refuse)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


WIRING_ARGS = {"split": [], "inline": ["--in-process-cycles"]}


@contextlib.contextmanager
def greenlight_server(database_url: str, wiring: str = "split") -> Iterator[str]:
    """``greenlight serve`` (``split``: its cycles in the scheduler process it spawns;
    ``inline``: in the API's process, as before issue 8)."""
    port = free_port()
    log = Path(tempfile.gettempdir()) / "gl-bench-serve.log"
    with refusing_ray() as ray, log.open("a") as stderr:
        env = {
            **os.environ,
            "GREENLIGHT_DATABASE_URL": database_url,
            "GREENLIGHT_CONFIG": str(CONFIG),
            "GREENLIGHT_API_PORT": str(port),
            "GREENLIGHT_RAY_ADDRESS": ray,
            "GREENLIGHT_LOG_LEVEL": "WARNING",
        }
        proc = subprocess.Popen(
            [sys.executable, "-m", "scheduler.cli.main", "serve", *WIRING_ARGS[wiring]],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_up(f"{url}/healthz")
            yield url
        finally:
            proc.terminate()
            proc.wait(timeout=30)


@contextlib.contextmanager
def bare_server(database_url: str) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "bare_app.py"), database_url, str(port)], cwd=ROOT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_up(f"{url}/docs")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@contextlib.contextmanager
def database(backend: str) -> Iterator[str]:
    if backend == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite:///{tmp}/greenlight.db"
        return
    admin = sa.create_engine(PG_URL)
    schema = f"gl_bench_{uuid.uuid4().hex[:10]}"
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = sa.make_url(PG_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


# --- bulk loads through the store ----------------------------------------------------------------


def _spec(i: int, group: str | None = None) -> JobSpec:
    return JobSpec(
        tenant="bench",
        name=f"bulk-{i}",
        kind=JobKind.TRAINING,
        entrypoint="python train.py",
        home_region=REGIONS[i % 3],
        expected_duration_s=3600.0,
        max_delay_s=36 * 3600.0,
        resources=Resources(gpus=1, cpus=4),
        expected_power_w=320.0,
        group_id=group,
    )


def load_queued(store: Any, n: int, now: datetime) -> None:
    """``n`` pending jobs with their first event, in bulk transactions of ``CHUNK``."""
    for start in range(0, n, CHUNK):
        batch = []
        for i in range(start, min(n, start + CHUNK)):
            job = Job(
                id=f"q-{uuid.uuid4().hex[:16]}",
                spec=_spec(i),
                state=JobState.PENDING,
                created_at=now,
                updated_at=now,
            )
            batch.append(
                (
                    job,
                    JobEvent(
                        job_id=job.id,
                        at=now,
                        kind="state",
                        actor="bench",
                        reason="submitted",
                        to_state=JobState.PENDING,
                    ),
                )
            )
        store.add_jobs(batch)


def load_finished(engine: Any, n: int, now: datetime) -> None:
    """``n`` succeeded jobs over the last 30 days, each with an event and an energy report."""
    rng = random.Random(7)
    for start in range(0, n, CHUNK):
        rows, events, reports = [], [], []
        for i in range(start, min(n, start + CHUNK)):
            created = now - timedelta(days=30) + timedelta(seconds=rng.randrange(29 * 86400))
            began = created + timedelta(seconds=rng.randrange(6 * 3600))
            job = Job(
                id=f"f-{uuid.uuid4().hex[:16]}",
                spec=_spec(i),
                state=JobState.SUCCEEDED,
                created_at=created,
                updated_at=began + timedelta(hours=1),
                attempt=1,
                region=REGIONS[rng.randrange(3)],
                submission_id="x",
                started_at=began,
                finished_at=began + timedelta(hours=1),
                exit_code=0,
            )
            rows.append(job_values(job))
            events.append(
                event_values(
                    JobEvent(
                        job_id=job.id,
                        at=job.finished_at or now,
                        kind="state",
                        actor="bench",
                        reason="finished",
                        from_state=JobState.RUNNING,
                        to_state=JobState.SUCCEEDED,
                    )
                )
            )
            reports.append(
                {
                    "job_id": job.id,
                    "attempt": 1,
                    "node": "n",
                    "device": "gpu:0",
                    "interval_start": began,
                    "interval_end": began + timedelta(hours=1),
                    "energy_j": rng.uniform(5e5, 2e6),
                    "method": "nvml-counter",
                }
            )
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                copy_rows(conn, jobs, rows)
                copy_rows(conn, job_events, events)
                copy_rows(conn, energy_reports, reports)
            else:
                conn.execute(sa.insert(jobs), rows)
                conn.execute(sa.insert(job_events), events)
                conn.execute(sa.insert(energy_reports), reports)


# --- the run -------------------------------------------------------------------------------------


@dataclass
class Run:
    backend: str
    rows: list[tuple[str, str]] = field(default_factory=list)

    def add(self, what: str, value: str) -> None:
        self.rows.append((what, value))
        print(f"  [{self.backend}] {what}: {value}", file=sys.stderr, flush=True)


def fmt(r: dict[str, Any]) -> str:
    text = f"{r['rate']:,.0f}/s  p50 {r['p50_ms']:.1f} ms  p99 {r['p99_ms']:.1f} ms"
    return text + (f"  ({r['errors']} errors)" if r["errors"] else "")


def settle_after_bulk_load(backend: str, store: SqlStore) -> None:
    """PostgreSQL: what autovacuum does in time after a bulk load or a first cycle's 100,000
    row rewrites, done now, so it does not land in the middle of a measured phase (the phases
    measure the queue's size, not a vacuum's debt)."""
    if backend == "postgresql":
        with store.engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(sa.text("VACUUM ANALYZE"))


def timed(fn: Any) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def bench_backend(backend: str, args: argparse.Namespace) -> Run:
    run = Run(backend)
    seconds = args.seconds
    with database(backend) as url:
        settings = load_settings(CONFIG, database_url=url)
        service = build_service(settings)  # migrates; bulk loads and in-process cycles use it
        store = cast(SqlStore, service.ctx.store)
        token = service.create_token(tenant="bench", role=Role.USER)[0]
        admin = service.create_token(tenant="ops", role=Role.ADMIN)[0]
        with bare_server(url) as bare:
            bare_32 = drive(url=bare, mode="submit", path="/jobs", clients=32, seconds=seconds)
        run.add("bare FastAPI+SQLAlchemy insert, 32 clients", fmt(bare_32))
        with greenlight_server(url, args.wiring) as api:
            for clients in (1, 8, 32):
                r = drive(
                    url=api,
                    token=token,
                    mode="submit",
                    path="/v1/jobs",
                    clients=clients,
                    seconds=seconds,
                )
                run.add(f"submit, empty queue, {clients} clients", fmt(r))
                if clients == 32:
                    run.add(
                        "submit rate / bare rate, 32 clients",
                        f"{100 * r['rate'] / bare_32['rate']:.0f} %",
                    )
                    empty_32 = r
            if "batch" in args.parts:
                batch = drive(
                    url=api,
                    token=token,
                    mode="batch",
                    path="/v1/jobs/batch",
                    clients=1,
                    seconds=seconds,
                    batch=10_000,
                )
                run.add(
                    "batch of 10,000",
                    f"{batch['rate'] * 10_000:,.0f} jobs/s "
                    f"(p50 {batch['p50_ms']:.0f} ms per batch)",
                )
        if "queued" not in args.parts:
            return run
        with store.engine.begin() as conn:  # the benchmark's own jobs out: queue sizes exact
            conn.execute(sa.delete(job_events))
            conn.execute(sa.delete(jobs))
        now = datetime.now(UTC)
        for n in (args.queued // 10, args.queued):
            have = sum(store.count_by_state().values())
            load_queued(store, n - have, now)
            cold = build_service(settings)
            first = timed(cold.plan_cycle)
            second = timed(cold.plan_cycle)
            cast(SqlStore, cold.ctx.store).close()
            # A restart: a new process over the queue the last one planned (its plans stored).
            restarted = build_service(settings)
            restart = timed(restarted.plan_cycle)
            cast(SqlStore, restarted.ctx.store).close()
            run.add(
                f"plan cycle, {n:,} queued (first, {n - have:,} never planned / next / "
                "after a restart)",
                f"{first:.2f} s / {second:.2f} s / {restart:.2f} s",
            )
        settle_after_bulk_load(backend, store)  # the cycles above rewrote 100,000 rows
        with greenlight_server(url, args.wiring) as api:
            time.sleep(args.settle)
            for clients in (1, 8, 32):
                r = drive(
                    url=api,
                    token=token,
                    mode="submit",
                    path="/v1/jobs",
                    clients=clients,
                    seconds=seconds,
                )
                run.add(f"submit, {args.queued:,} queued, {clients} clients", fmt(r))
            run.add(
                f"submit rate with {args.queued:,} queued / empty, 32 clients",
                f"{100 * r['rate'] / empty_32['rate']:.0f} %",
            )
            some = [f"/v1/jobs/{j.id}" for j in store.list_jobs(limit=200, count=False)[0]]
            time.sleep(args.settle)  # the arrivals' last cycle ends: idle means idle
            idle = drive(url=api, token=token, mode="get", paths=some, clients=8, seconds=seconds)
            drive(url=api, token=token, mode="submit", path="/v1/jobs", clients=1, seconds=0.2)
            busy = drive(
                url=api, token=token, mode="get", paths=some, clients=8, seconds=seconds
            )  # the arrival just woke a cycle over the queue
            run.add(
                "GET /v1/jobs/{id} p99, idle / while a cycle runs",
                f"{idle['p99_ms']:.1f} ms / {busy['p99_ms']:.1f} ms",
            )
        if "stored" not in args.parts:
            return run
        have = sum(store.count_by_state().values())
        load_finished(store.engine, max(0, args.stored - have), now)
        total = sum(store.count_by_state().values())
        settle_after_bulk_load(backend, store)
        with greenlight_server(url, args.wiring) as api:
            time.sleep(args.settle)
            listing = drive(
                url=api,
                token=token,
                mode="get",
                clients=8,
                seconds=seconds,
                paths=["/v1/jobs?state=pending&limit=50", "/v1/jobs?state=succeeded&limit=50"],
            )
            run.add(f"GET /v1/jobs?state=..&limit=50 over {total:,} jobs", fmt(listing))
            page = service.list_jobs(
                service.authenticate(token), state=JobState.SUCCEEDED, limit=50
            )
            deep = [f"/v1/jobs?state=succeeded&limit=50&cursor={page.next_cursor}"]
            keyset = drive(url=api, token=token, mode="get", clients=8, seconds=seconds, paths=deep)
            run.add(f"GET /v1/jobs keyset page over {total:,} jobs", fmt(keyset))
            report_s = []
            import httpx2 as httpx

            for _ in range(3):
                t0 = time.perf_counter()
                response = httpx.get(
                    f"{api}/v1/reports/savings",
                    timeout=600,
                    headers={"Authorization": f"Bearer {admin}"},
                )
                report_s.append(time.perf_counter() - t0)
                assert response.status_code == 200, response.text[:300]
            jobs_counted = response.json()["total"]["jobs"]
            run.add(
                f"admin savings report over {jobs_counted:,} finished jobs",
                f"{statistics.median(report_s):.2f} s (median of 3)",
            )
    return run


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if argv[:1] == ["_drive"]:
        print(json.dumps(asyncio.run(_drive(json.loads(argv[1])))))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--backends", default="postgresql,sqlite")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--wiring",
        choices=sorted(WIRING_ARGS),
        default="split",
        help="split: serve's cycles in its scheduler process (default); inline: in the API's",
    )
    parser.add_argument(
        "--parts",
        default="batch,queued,stored",
        help="what to run besides the empty-queue submits: batch, queued (plan cycles, "
        "submits with a queue, GET p99 during a cycle), stored (list and report over --stored)",
    )
    parser.add_argument("--queued", type=int, default=None, help="default 100,000 (--quick 10,000)")
    args = parser.parse_args(argv)
    global CONFIG
    CONFIG = bench_config(Path(tempfile.mkdtemp(prefix="gl-bench-")))
    args.parts = set(args.parts.split(","))
    args.queued = args.queued or (10_000 if args.quick else 100_000)
    args.stored = 100_000 if args.quick else 1_000_000
    args.seconds = 4.0 if args.quick else 15.0
    args.settle = 5.0 if args.quick else 20.0
    runs = [bench_backend(b, args) for b in args.backends.split(",")]
    lines = [
        f"# bench/api_load.py{' --quick' if args.quick else ''}, "
        f"{os.cpu_count()} cores, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, wiring {args.wiring}, "
        f"parts {','.join(sorted(args.parts))}, load average at the end "
        f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}",
        "",
    ]
    lines += [
        "| measure | " + " | ".join(r.backend for r in runs) + " |",
        "|---|" + "---|" * len(runs),
    ]
    for i, (what, _) in enumerate(runs[0].rows):
        lines.append(f"| {what} | " + " | ".join(r.rows[i][1] for r in runs) + " |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
