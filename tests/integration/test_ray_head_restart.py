"""A local Ray head killed and restarted under running jobs (issue 9, item 9).

A private head (fixed ports) runs four jobs through the real path: the API in a thread, the
worker runner reporting energy every second. The head is SIGKILLed (its whole process group:
GCS, raylet, dashboard, Ray's workers; no orderly shutdown), a fifth job (``max_retries=0``)
is submitted while it is down, and a new head comes up on the same ports. Each job appends a
``start`` and an ``end`` line to a file (the ground truth of what ran), and the test checks:

* no attempt ran twice (one ``start`` line per job and attempt at most), no job failed, and a
  job whose first run was lost with the old head ran again as attempt 2, once;
* the job submitted while Ray was down used no retry (its dispatch was released) and ran as
  attempt 1, dispatched within a few seconds of the head answering again;
* no attempt's energy counts twice: per attempt and device, the runner's intervals do not
  overlap and add up to at most one run's length.

What happens to the runs themselves is recorded in the assertion messages: Ray starts job
entrypoints in sessions of their own, so killing the head's process group does not kill them;
the runs lost with the old head are retried only once their runner has been silent for the
heartbeat.
"""

from __future__ import annotations

import dataclasses
import itertools
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from scheduler.bootstrap import RayEndpoint, build_service, start_api_thread
from scheduler.config import load_settings
from scheduler.dispatch.local_ray import LocalRayHead, free_port
from scheduler.domain import JobEvent, JobState, Policy
from scheduler.service import GreenlightService
from tests.fakes.store import make_job, make_spec

pytestmark = pytest.mark.ray

MIN_RUN_S = 8.0  # every run lasts at least this long...
MAX_RUN_S = 150.0  # ...and at most this, unless the test lets it end sooner (the flag file)
DOWN_S = 10.0  # how long the head stays dead before its successor starts
HEARTBEAT_S = 15.0  # a lost attempt's runner silent this long is dead (it reports every 1 s)
TEST_BUDGET_S = 180.0
# Appends "<job> <attempt> start|end <wall time>" to the ground-truth file; after MIN_RUN_S it
# ends as soon as the flag file exists.
JOB_SCRIPT = """\
import os, sys, time
truth, flag, min_s, max_s = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
tag = os.environ["GREENLIGHT_JOB_ID"] + " " + os.environ["GREENLIGHT_ATTEMPT"]
with open(truth, "a") as f:
    f.write(f"{tag} start {time.time()}\\n")
began = time.monotonic()
time.sleep(min_s)
while not os.path.exists(flag) and time.monotonic() - began < max_s:
    time.sleep(0.2)
with open(truth, "a") as f:
    f.write(f"{tag} end {time.time()}\\n")
"""
TERMINAL = {JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED}


def _head(ports: tuple[int, int, int]) -> LocalRayHead:
    gcs, dashboard, agent = ports
    return LocalRayHead(
        num_cpus=8,  # logical: five one-CPU jobs at once on any machine
        num_gpus=0,
        memory_mb=4096,
        object_store_memory_mb=128,
        auth_mode="disabled",
        gcs_port=gcs,
        dashboard_port=dashboard,
        agent_port=agent,
    )


@pytest.fixture
def heads() -> Iterator[list[LocalRayHead]]:
    """Every head the test starts, stopped at the end (entrypoints of a killed one too)."""
    started: list[LocalRayHead] = []
    try:
        yield started
    finally:
        for head in started:
            head.stop()


def _add_job(service: GreenlightService, job_id: str, entrypoint: str) -> None:
    now = service.ctx.clock.now()
    spec = make_spec(
        policy=Policy.NOW,
        max_delay_s=0.0,
        max_retries=0,
        entrypoint=entrypoint,
        expected_duration_s=60.0,
    )
    service.ctx.store.add_job(
        make_job(job_id, created_at=now, spec=spec),
        JobEvent(
            job_id=job_id,
            at=now,
            kind="state",
            actor="test",
            reason="submitted",
            to_state=JobState.PENDING,
        ),
    )


def _cycle(service: GreenlightService) -> None:
    service.plan_cycle()
    service.dispatch_due()
    service.reconcile()


def _ground_truth(path: Path) -> list[tuple[str, int, str, float]]:
    """(job, attempt, "start" | "end", wall time) per line of the ground-truth file."""
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        job_id, attempt, what, at = line.split()
        rows.append((job_id, int(attempt), what, float(at)))
    return rows


def test_a_restarted_head_runs_nothing_twice_and_costs_no_retry(
    sqlite_url: str, tmp_path: Path, heads: list[LocalRayHead]
) -> None:
    budget = time.monotonic() + TEST_BUDGET_S
    ports = (free_port(), free_port(), free_port())
    heads.append(_head(ports).start())

    api_port = free_port()
    settings = load_settings(database_url=sqlite_url, api_port=api_port)
    service = build_service(settings, ray=RayEndpoint(heads[0].dashboard_url))
    service.ctx.config = dataclasses.replace(
        service.ctx.config,
        worker_command=f"{sys.executable} -m workers.runner --interval-s 1 --meter estimate",
        heartbeat_s=HEARTBEAT_S,
    )
    service.refresh_forecasts()
    server = start_api_thread(service, "127.0.0.1", api_port)
    try:
        _scenario(service, tmp_path, heads, ports, budget)
    finally:
        (tmp_path / "flag").touch()  # whatever still runs ends
        server.stop()


def _scenario(
    service: GreenlightService,
    tmp_path: Path,
    heads: list[LocalRayHead],
    ports: tuple[int, int, int],
    budget: float,
) -> None:
    ctx, store = service.ctx, service.ctx.store
    script, truth, flag = tmp_path / "job.py", tmp_path / "ran.txt", tmp_path / "flag"
    script.write_text(JOB_SCRIPT)
    entrypoint = f"{sys.executable} {script} {truth} {flag} {MIN_RUN_S} {MAX_RUN_S}"
    short = f"{sys.executable} {script} {truth} {script} {MIN_RUN_S} {MIN_RUN_S}"  # no waiting
    running = [f"run{i}" for i in range(4)]
    every = [*running, "late"]
    for job_id in running:
        _add_job(service, job_id, entrypoint)

    def drive_until(done: Callable[[], bool], what: str) -> None:
        while not done():
            assert time.monotonic() < budget, (what, {j: store.get_job(j) for j in every})
            _cycle(service)
            time.sleep(0.3)

    def states() -> dict[str, JobState]:
        return {j: store.get_job(j).state for j in running}

    # 1. All four run, and their runners have reported energy (the heartbeat).
    drive_until(
        lambda: (
            {j for j, _, what, _ in _ground_truth(truth) if what == "start"} >= set(running)
            and {r.job_id for r in store.energy_reports(running)} >= set(running)
        ),
        "the first runs to start and report",
    )
    assert all(store.get_job(j).attempt == 1 for j in running)

    # 2. The head dies hard. A job submitted now cannot reach Ray: its claim is released.
    heads[0].kill()
    killed_at = time.monotonic()
    assert not heads[0].running
    _add_job(service, "late", short)
    service.plan_cycle()
    assert service.dispatch_due() == []
    late = store.get_job("late")
    assert late.attempt == 0, late  # the failed dispatch used no retry
    assert any(e.kind == "release" for e in store.events("late"))
    while time.monotonic() < killed_at + DOWN_S:
        _cycle(service)
        time.sleep(0.3)
    assert ctx.regions_down, "the dead head was not noticed"
    assert set(states().values()) <= {JobState.DISPATCHED, JobState.RUNNING}, states()
    assert store.get_job("late").attempt == 0
    assert store.get_job("late").state not in TERMINAL

    # 3. A new head on the same ports, which knows none of the old jobs. The old runs are still
    # going (their entrypoints outlived the head): they are not submitted again.
    heads.append(_head(ports).start())
    up_at = time.monotonic()
    assert heads[1].dashboard_url == heads[0].dashboard_url
    assert heads[1].address == heads[0].address
    late_dispatched_s: float | None = None

    def late_ran() -> bool:
        nonlocal late_dispatched_s
        if late_dispatched_s is None and store.get_job("late").attempt >= 1:
            late_dispatched_s = time.monotonic() - up_at
        return store.get_job("late").state in TERMINAL

    drive_until(late_ran, "the job submitted during the outage to end")
    alive = ctx.counters["attempts_unknown_alive_total"]
    for _ in range(3):  # a few more passes over the old attempts, the head answering
        _cycle(service)
        time.sleep(0.3)
    assert ctx.counters["attempts_unknown_alive_total"] >= alive + len(running)
    rows = _ground_truth(truth)
    assert not [r for r in rows if r[0] in running and r[2] == "end"], "an old run ended early"
    assert all(store.get_job(j).attempt == 1 for j in running), states()
    assert ctx.counters["attempts_lost_total"] == 0

    # 4. The old runs end; once their runners are silent for the heartbeat, each job retries
    # as attempt 2 and runs once more.
    flag.touch()
    drive_until(lambda: set(states().values()) <= TERMINAL, "every job to end")

    rows = _ground_truth(truth)
    starts = Counter((j, a) for j, a, what, _ in rows if what == "start")
    ends = Counter((j, a) for j, a, what, _ in rows if what == "end")
    assert max(starts.values()) == 1, f"an attempt ran twice: {starts}"
    assert ends == starts, (starts, ends)
    span = {(j, a): at for j, a, what, at in rows if what == "start"}
    finish = {(j, a): at for j, a, what, at in rows if what == "end"}

    # The job submitted during the outage: attempt 1, dispatched promptly once Ray was back.
    late = store.get_job("late")
    assert late.state is JobState.SUCCEEDED, (late, store.events("late"))
    assert late.attempt == 1
    assert late_dispatched_s is not None
    assert late_dispatched_s < 10.0, late_dispatched_s
    assert sum(1 for e in store.events("late") if e.kind == "dispatch") == 1

    # The jobs whose runs the head lost: none failed; each ran attempt 2 once, only after
    # attempt 1 had ended, dispatched promptly once the attempt was declared lost.
    for job_id in running:
        job = store.get_job(job_id)
        events = store.events(job_id)
        assert job.state is JobState.SUCCEEDED, (job, events)
        assert job.attempt == 2, (job, events)
        assert span[(job_id, 2)] > finish[(job_id, 1)], "attempt 2 began before 1 ended"
        assert [e.kind for e in events].count("dispatch") == 2, events
        [lost] = [e for e in events if "lost by Ray" in e.reason]
        [second] = [e for e in events if e.kind == "dispatch"][1:]
        assert (second.at - lost.at).total_seconds() < 10.0, (lost, second)
    assert ctx.counters["attempts_lost_total"] == len(running)

    # Energy: per attempt and device, intervals do not overlap and add up to one run at most.
    by_key: dict[tuple[str, int, str], list[tuple[float, float]]] = defaultdict(list)
    for r in store.energy_reports(every):
        by_key[(r.job_id, r.attempt, r.device)].append(
            (r.interval_start.timestamp(), r.interval_end.timestamp())
        )
    assert {(j, a) for j, a, _ in by_key} == set(starts), "energy missing or for no run"
    for (job_id, attempt, device), spans in by_key.items():
        spans.sort()
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert start >= end - 1e-6, f"{job_id}/{attempt}/{device}: overlap {spans}"
        total = sum(b - a for a, b in spans)
        ran = finish[(job_id, attempt)] - span[(job_id, attempt)]
        assert total <= ran + 4.0, f"{job_id}/{attempt}/{device}: {total:.1f} s for {ran:.1f} s"
