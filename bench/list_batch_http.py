"""Issue 8's list and batch targets over HTTP, this tree beside an older one in one run.

Starts ``greenlight serve`` (its scheduler process included, Ray refused, as
``bench/api_load.py`` does) from this checkout and, with ``--before DIR``, from another
checkout of the project (a ``git worktree`` of an earlier commit) on the same database, one
after the other, and drives each from a separate process:

* ``GET /v1/jobs?state=..&limit=50`` (first pages of pending and succeeded, and a keyset page)
  over the ``bench/store_scale.py`` schema (``--keep``, 1,000,000 finished + 100,000 queued
  jobs): p50/p99 at 1 and 8 clients;
* ``POST /v1/jobs/batch`` of 10,000 specs, one client, ``--batches`` in a row, on a fresh
  schema (jobs/s; p50 per batch), with the server's CPU per batch.

Usage::

    .venv/bin/python bench/list_batch_http.py [--before /tmp/gl_before] [--parts list,batch]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx2 as httpx  # noqa: E402

from bench import api_load, store_scale  # noqa: E402
from scheduler.bootstrap import build_service  # noqa: E402
from scheduler.config import load_settings  # noqa: E402
from scheduler.domain import JobState, Role  # noqa: E402


@contextlib.contextmanager
def server(root: Path, url: str) -> Iterator[tuple[str, int]]:
    """``greenlight serve`` from ``root``'s code; yields its URL and pid."""
    port = api_load.free_port()
    with api_load.refusing_ray() as ray, open(os.devnull, "w") as quiet:
        env = {
            **os.environ,
            "GREENLIGHT_DATABASE_URL": url,
            "GREENLIGHT_CONFIG": str(api_load.CONFIG),
            "GREENLIGHT_API_PORT": str(port),
            "GREENLIGHT_RAY_ADDRESS": ray,
            "GREENLIGHT_LOG_LEVEL": "WARNING",
        }
        proc = subprocess.Popen(
            [sys.executable, "-m", "scheduler.cli.main", "serve"],
            env=env,
            cwd=root,
            stdout=quiet,
            stderr=quiet,
        )
        api = f"http://127.0.0.1:{port}"
        try:
            api_load.wait_up(f"{api}/healthz")
            yield api, proc.pid
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def cpu_s(pid: int) -> float:
    """User + system CPU of ``pid`` so far (the API process, not its scheduler child)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bench_list(roots: dict[str, Path], keep: str, seconds: float) -> list[str]:
    url = store_scale.schema_url(keep)
    service: Any = build_service(load_settings(api_load.CONFIG, database_url=url))
    token = service.create_token(tenant="bench", role=Role.USER)[0]
    page = service.list_jobs(service.authenticate(token), state=JobState.SUCCEEDED, limit=50)
    # planned, not pending: the scheduler process plans the queued jobs (pending pages empty).
    firsts = ["/v1/jobs?state=planned&limit=50", "/v1/jobs?state=succeeded&limit=50"]
    keyset = [f"/v1/jobs?state=succeeded&limit=50&cursor={page.next_cursor}"]
    lines = []
    for name, root in roots.items():
        with server(root, url) as (api, pid):
            time.sleep(10)
            for what, paths in (("first pages", firsts), ("keyset page", keyset)):
                for clients in (1, 8):
                    c0 = cpu_s(pid)
                    r = api_load.drive(
                        url=api,
                        token=token,
                        mode="get",
                        clients=clients,
                        seconds=seconds,
                        paths=paths,
                    )
                    per = 1e3 * (cpu_s(pid) - c0) / max(1, r["n"])
                    lines.append(
                        f"[{name}] GET /v1/jobs?state=..&limit=50 {what}, {clients} clients: "
                        f"{api_load.fmt(r)}  (API process CPU {per:.1f} ms/request)"
                    )
                    print(lines[-1], flush=True)
    return lines


def bench_batch(roots: dict[str, Path], batches: int) -> list[str]:
    lines = []
    for name, root in roots.items():
        with api_load.database("postgresql") as url:
            service: Any = build_service(load_settings(api_load.CONFIG, database_url=url))
            token = service.create_token(tenant="bench", role=Role.USER)[0]
            headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
            with server(root, url) as (api, pid):
                time.sleep(3)
                walls, cpus = [], []
                with httpx.Client(base_url=api, timeout=600) as http:
                    for b in range(batches):
                        jobs = [api_load.job_body(b * 10_000 + i) for i in range(10_000)]
                        body = json.dumps({"jobs": jobs}).encode()
                        c0, t0 = cpu_s(pid), time.perf_counter()
                        response = http.post("/v1/jobs/batch", content=body, headers=headers)
                        walls.append(time.perf_counter() - t0)
                        cpus.append(cpu_s(pid) - c0)
                        assert response.status_code == 201, response.text[:300]
                wall, per = statistics.median(walls), statistics.median(cpus)
                lines.append(
                    f"[{name}] POST /v1/jobs/batch of 10,000, PostgreSQL, {batches} batches: "
                    f"median {wall * 1e3:.0f} ms = {10_000 / wall:,.0f} jobs/s (best "
                    f"{10_000 / min(walls):,.0f}); API process CPU median {per * 1e3:.0f} ms "
                    f"per batch = {10_000 / per:,.0f} jobs/s of CPU"
                )
                print(lines[-1], flush=True)
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", type=Path, default=None)
    parser.add_argument("--keep", default="gl_scale")
    parser.add_argument("--parts", default="list,batch")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--batches", type=int, default=5)
    args = parser.parse_args(argv)
    api_load.CONFIG = api_load.bench_config(Path(tempfile.mkdtemp(prefix="gl-lb-")))
    roots = {"after": ROOT}
    if args.before is not None:
        roots = {"before": args.before, "after": ROOT}
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"# bench/list_batch_http.py {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, load {load}")
    parts = set(args.parts.split(","))
    if "batch" in parts:
        bench_batch(roots, args.batches)
    if "list" in parts:
        bench_list(roots, args.keep, args.seconds)
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"# load average at the end {load}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
