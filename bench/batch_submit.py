"""Batch submission in process (issue 8): ``POST /v1/jobs/batch`` of 10,000 specs through the
real app (TestClient, no network), on PostgreSQL (a fresh schema of the test database) and
SQLite, with the request's CPU split into its parts.

Usage::

    .venv/bin/python bench/batch_submit.py [--backends postgresql,sqlite] [--batches 5]
        [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fastapi.testclient import TestClient  # noqa: E402

from bench import api_load  # noqa: E402
from scheduler.api.app import create_app  # noqa: E402
from scheduler.bootstrap import build_service  # noqa: E402
from scheduler.config import load_settings  # noqa: E402
from scheduler.domain import Role  # noqa: E402

BATCH = 10_000


def run_backend(backend: str, batches: int, profile: bool) -> list[str]:
    lines = []
    with api_load.database(backend) as url:
        service: Any = build_service(load_settings(api_load.CONFIG, database_url=url))
        token = service.create_token(tenant="bench", role=Role.USER)[0]
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        service.plan_cycle()  # the ledger warm, as in a running service
        with TestClient(create_app(service)) as http:
            wall, cpu = [], []
            for b in range(batches):
                body = json.dumps(
                    {"jobs": [api_load.job_body(b * BATCH + i) for i in range(BATCH)]}
                ).encode()
                prof = cProfile.Profile() if profile and b == batches - 1 else None
                t0, c0 = time.perf_counter(), time.process_time()
                if prof:
                    prof.enable()
                response = http.post("/v1/jobs/batch", content=body, headers=headers)
                if prof:
                    prof.disable()
                wall.append(time.perf_counter() - t0)
                cpu.append(time.process_time() - c0)
                assert response.status_code == 201, response.text[:500]
                assert response.json()["count"] == BATCH
                if prof:
                    pstats.Stats(prof).sort_stats("cumulative").print_stats(45)
        w, c = statistics.median(wall), statistics.median(cpu)
        lines.append(
            f"{backend}: batch of {BATCH:,} in process: median {w * 1e3:.0f} ms wall "
            f"({BATCH / w:,.0f} jobs/s), {c * 1e3:.0f} ms CPU ({BATCH / c:,.0f} jobs/s of CPU); "
            f"min wall {min(wall) * 1e3:.0f} ms, {batches} batches"
        )
        print(lines[-1], flush=True)
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backends", default="postgresql,sqlite")
    parser.add_argument("--batches", type=int, default=5)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args(argv)
    api_load.CONFIG = api_load.bench_config(Path(tempfile.mkdtemp(prefix="gl-batch-")))
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"# bench/batch_submit.py {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, load average {load}")
    for backend in args.backends.split(","):
        run_backend(backend, args.batches, args.profile)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
