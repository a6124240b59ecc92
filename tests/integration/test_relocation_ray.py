"""Deployments that follow the sun, on a real two-region Ray cluster (issue 11).

Region ``gl-a`` is a Ray head, ``gl-b`` a second ``ray start`` node in its cluster, each
labelled as its region's node group. The service runs its real cycles over a SQLite file with
its REST API on uvicorn; the deployment is the example model server under the worker runner,
which reports its endpoint and energy. Forecasts are a small replayed trace written to the
store: ``gl-a`` clean first, then ``gl-b``. The scheduler's clock is the wall clock shifted
forward on demand (hours pass between two cycles, while Ray and the runner keep real time).
"""

from __future__ import annotations

import contextlib
import dataclasses
import shlex
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from scheduler.bootstrap import RayEndpoint, build_service, start_api_thread
from scheduler.config import Settings, load_settings
from scheduler.dispatch.local_ray import LocalRayHead, free_port
from scheduler.domain import (
    Forecast,
    IntensityPoint,
    Job,
    JobState,
    Principal,
    Role,
    SeriesKind,
)
from scheduler.domain.deployments import COPY_STOPPED
from scheduler.domain.runs import RunStatus
from scheduler.service import GreenlightService
from tests.ray_cluster import LocalRayWorkerNode, machine_ip

pytestmark = pytest.mark.ray

A, B = "gl-a", "gl-b"
A_LABEL, B_LABEL = "gl-test-region-a", "gl-test-region-b"
ZONES = {A: "DE", B: "ES"}
TIMEOUT_S = (3.0, 10.0)
WAIT_S = 180.0
ADMIN = Principal(tenant="ops", role=Role.ADMIN, token_id="t")
SERVE = f"{sys.executable} -m workers.examples.serve_model --host 0.0.0.0 --port 0 --device cpu"
ROW = [0.01] * 1000


@dataclass
class ShiftedClock:
    """The wall clock moved ``shift`` ahead on demand, for the scheduler and for what workers
    timestamp (their reports stay inside their runs)."""

    shift: timedelta = field(default_factory=timedelta)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.shift

    def from_wall(self, wall: datetime) -> datetime:
        return wall + self.shift


@dataclass
class Live:
    service: GreenlightService
    settings: Settings
    url: str
    clock: ShiftedClock
    headers: dict[str, str]

    def restart(self) -> None:
        """A new service on the same database: nothing of the old one's memory survives."""
        self.service = _service(self.settings, self.clock)

    def cycle(self) -> None:
        self.service.plan_cycle()
        self.service.dispatch_due()
        self.service.reconcile()

    def job(self, job_id: str) -> Job:
        return self.service.get_job(job_id, ADMIN)

    def drive_until(self, job_id: str, done: Callable[[Job], bool]) -> Job:
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            self.cycle()
            job = self.job(job_id)
            if done(job):
                return job
            time.sleep(0.3)
        raise AssertionError(f"{job_id} stuck: {self.job(job_id)}")

    def trace(self, a_g_per_kwh: float, b_g_per_kwh: float) -> None:
        """A flat 48 h forecast per region, issued now (what the providers would have sent)."""
        now = self.clock.now().replace(second=0, microsecond=0)
        for region, value in ((A, a_g_per_kwh), (B, b_g_per_kwh)):
            self.service.ctx.store.append_forecast(
                Forecast(
                    zone=ZONES[region],
                    provider="replay",
                    kind=SeriesKind.FORECAST,
                    issued_at=now,
                    resolution_s=3600,
                    points=tuple(
                        IntensityPoint(valid_at=now + timedelta(hours=h), g_per_kwh=value)
                        for h in range(-1, 48)
                    ),
                )
            )

    def actuals(self, a_g_per_kwh: float, b_g_per_kwh: float) -> None:
        """Measured intensity, flat, from twelve hours ago to twelve hours ahead."""
        start = self.clock.now().replace(minute=0, second=0, microsecond=0) - timedelta(hours=12)
        for region, value in ((A, a_g_per_kwh), (B, b_g_per_kwh)):
            self.service.ctx.store.append_forecast(
                Forecast(
                    zone=ZONES[region],
                    provider="replay",
                    kind=SeriesKind.ACTUAL,
                    issued_at=start + timedelta(hours=24),
                    resolution_s=3600,
                    points=tuple(
                        IntensityPoint(valid_at=start + timedelta(hours=h), g_per_kwh=value)
                        for h in range(25)
                    ),
                )
            )

    def submit(self, entrypoint: str) -> str:
        body = {
            "name": "mlp-serve",
            "kind": "deployment",
            "home_region": A,
            "entrypoint": entrypoint,
            "resources": {"gpus": 0, "cpus": 0.5},
            "allowed_regions": [A, B],
        }
        created = requests.post(
            f"{self.url}/v1/jobs", json=body, headers=self.headers, timeout=TIMEOUT_S
        )
        assert created.status_code == 201, created.text
        return str(created.json()["id"])

    def endpoint(self, job_id: str) -> dict[str, object]:
        response = requests.get(
            f"{self.url}/v1/deployments/{job_id}/endpoint", headers=self.headers, timeout=TIMEOUT_S
        )
        assert response.status_code == 200, response.text
        body: dict[str, object] = response.json()
        return body

    def status(self, region: str, submission_id: str) -> RunStatus:
        ctx = self.service.ctx
        return ctx.dispatcher.status(ctx.regions[region], submission_id).status

    def wait_status(self, region: str, submission_id: str, status: RunStatus) -> None:
        """Until the run reads ``status`` (a stop is asynchronous: SIGTERM, then the exit)."""
        deadline = time.monotonic() + 60
        while (seen := self.status(region, submission_id)) is not status:
            assert time.monotonic() < deadline, f"{submission_id} still {seen}"
            time.sleep(0.5)

    def kinds(self, job_id: str) -> list[str]:
        return [e.kind for e in self.service.events(job_id, ADMIN)]


def _service(settings: Settings, clock: ShiftedClock) -> GreenlightService:
    service = build_service(settings, clock=clock, ray=RayEndpoint(settings.ray_address or ""))
    # Reports every 2 s, so the decision sees measured power, not only the expected one.
    service.ctx.config = dataclasses.replace(
        service.ctx.config, worker_command=f"{sys.executable} -m workers.runner --interval-s 2"
    )
    return service


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalRayHead]:
    """A head labelled gl-a (2 CPUs) and a worker node labelled gl-b (1 CPU), on this
    machine's own address (Ray admits no second node on loopback)."""
    ip = machine_ip()
    if ip is None:
        pytest.skip("no non-loopback address to run a two-node Ray cluster on")
    head = LocalRayHead(
        num_cpus=2,
        num_gpus=0,
        memory_mb=2048,
        object_store_memory_mb=256,
        resources={A_LABEL: 1000},
        auth_mode="disabled",
        node_ip=ip,
    ).start()
    try:
        node = LocalRayWorkerNode(head, resources={B_LABEL: 1000}, memory_mb=2048).start()
        try:
            yield head
        finally:
            node.stop()
    finally:
        head.stop()


@contextlib.contextmanager
def open_live(
    tmp_path: Path, cluster: LocalRayHead, relocation: dict[str, float], **settings: Any
) -> Iterator[Live]:
    """The service on ``cluster``'s two regions (a SQLite file, the API on a free port,
    ``relocation`` settings and any other ``settings``); on exit every unfinished job is
    cancelled and reconciled, so no copy outlives the test."""
    port = free_port()
    config = tmp_path / "greenlight.toml"
    config.write_text(
        "".join(
            f'[[regions]]\nname = "{name}"\ngrid_zone = "{ZONES[name]}"\nprovider = "replay"\n'
            f'gpus = 0\npue = 1.0\nnode_label = "{label}"\n'
            for name, label in ((A, A_LABEL), (B, B_LABEL))
        )
    )
    loaded = load_settings(
        config,
        database_url=f"sqlite:///{tmp_path / 'greenlight.db'}",
        api_port=port,
        ray_address=cluster.dashboard_url,
        relocation=relocation,
        **settings,
    )
    clock = ShiftedClock()
    service = _service(loaded, clock)
    server = start_api_thread(service, "127.0.0.1", port)
    secret, _ = service.create_token(tenant="acme", role=Role.USER)
    live = Live(
        service=service,
        settings=loaded,
        url=server.url,
        clock=clock,
        headers={"Authorization": f"Bearer {secret}"},
    )
    try:
        yield live
    finally:
        for job in live.service.ctx.store.list_jobs(limit=100)[0]:
            if not job.state.terminal:
                live.service.cancel(job.id, ADMIN)
        live.service.reconcile()  # stops the copy a move left behind, if any
        server.stop()


@pytest.fixture
def live(tmp_path: Path, cluster: LocalRayHead) -> Iterator[Live]:
    relocation = {
        "min_stay_s": 3600,
        "threshold_g": 1.0,
        "threshold_pct": 5.0,
        "health_timeout_s": 120,
        "drain_s": 3,
    }
    with open_live(tmp_path, cluster, relocation) as live:
        yield live


class Client(threading.Thread):
    """Keeps calling the deployment where the API says it answers, as a client would: the
    endpoint first, then a prediction there. Counts answers and failures."""

    def __init__(self, live: Live, job_id: str) -> None:
        super().__init__(name="client", daemon=True)
        self._live, self._job_id = live, job_id
        self.ok = 0
        self.failed: list[str] = []
        self.endpoints: list[str] = []
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            endpoint = str(self._live.endpoint(self._job_id)["endpoint"])
            if not self.endpoints or self.endpoints[-1] != endpoint:
                self.endpoints.append(endpoint)
            try:
                response = requests.post(
                    f"{endpoint}/predict", json={"inputs": [ROW]}, timeout=TIMEOUT_S
                )
                if response.status_code == 200 and len(response.json()["outputs"]) == 1:
                    self.ok += 1
                else:
                    self.failed.append(f"{endpoint}: HTTP {response.status_code}")
            except requests.RequestException as e:
                self.failed.append(f"{endpoint}: {type(e).__name__}")
            time.sleep(0.02)

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=30)


def _running_with_endpoint(live: Live, job_id: str) -> Job:
    job = live.drive_until(job_id, lambda j: j.state is JobState.RUNNING and j.endpoint is not None)
    assert job.endpoint is not None
    assert requests.get(f"{job.endpoint}/healthz", timeout=TIMEOUT_S).status_code == 200
    return job


def test_deployment_follows_the_greener_region_once_without_a_failed_request(live: Live) -> None:
    live.trace(a_g_per_kwh=100, b_g_per_kwh=400)
    job_id = live.submit(SERVE)
    job = _running_with_endpoint(live, job_id)
    assert (job.region, job.submission_id) == (A, f"{job_id}-1")
    first = live.endpoint(job_id)
    assert first["endpoint"] == job.endpoint
    assert (first["region"], first["state"]) == (A, "running")
    shown = requests.get(f"{live.url}/v1/jobs/{job_id}", headers=live.headers, timeout=TIMEOUT_S)
    assert shown.json()["endpoint"] == job.endpoint

    client = Client(live, job_id)
    client.start()
    try:
        live.cycle()  # same forecast, still inside the minimum stay: stays
        assert live.job(job_id).state is JobState.RUNNING

        live.clock.shift += timedelta(hours=2)  # past the minimum stay; the greener region flips
        live.trace(a_g_per_kwh=400, b_g_per_kwh=100)
        live.service.plan_cycle()
        moving = live.job(job_id)
        assert moving.state is JobState.RELOCATING
        assert moving.move is not None
        assert moving.move.to_region == B
        assert moving.move.expected_saving_g > 0

        live.restart()  # the service dies mid-move; a new one carries on from the store
        moved = live.drive_until(job_id, lambda j: j.state is JobState.RUNNING and j.move is None)
        time.sleep(1.0)  # the client keeps calling the new copy a while
    finally:
        client.stop()

    assert client.failed == []
    assert client.ok > 20
    assert client.endpoints[0] == job.endpoint
    assert client.endpoints[-1] == moved.endpoint != job.endpoint
    assert (moved.region, moved.submission_id, moved.attempt) == (B, f"{job_id}-2", 2)
    live.wait_status(A, f"{job_id}-1", RunStatus.STOPPED)
    assert live.status(B, f"{job_id}-2") is RunStatus.RUNNING
    after = live.endpoint(job_id)
    assert (after["endpoint"], after["region"], after["state"]) == (moved.endpoint, B, "running")

    events = live.service.events(job_id, ADMIN)
    kinds = [e.kind for e in events]
    assert kinds.count("relocated") == 1
    assert kinds.index("switch") < kinds.index(COPY_STOPPED) < kinds.index("relocated")
    relocated = next(e for e in events if e.kind == "relocated")
    assert f"from {A} to {B}: expected to save" in relocated.reason
    states = [(e.from_state, e.to_state) for e in events if e.kind == "state"]
    assert (JobState.RUNNING, JobState.RELOCATING) in states
    assert states[-1] == (JobState.RELOCATING, JobState.RUNNING)
    (history,) = moved.relocations
    assert (history.from_region, history.to_region) == (A, B)
    assert history.expected_saving_g == pytest.approx(moved.relocations[0].expected_saving_g)
    assert history.expected_saving_g > 0
    view = requests.get(f"{live.url}/v1/jobs/{job_id}", headers=live.headers, timeout=TIMEOUT_S)
    assert view.json()["relocations"][0]["expected_saving_g"] == pytest.approx(
        history.expected_saving_g
    )

    # Both copies reported energy under their own attempts; the old one's ended with its stop.
    deadline = time.monotonic() + 30
    while {r.attempt for r in live.service.ctx.store.energy_reports([job_id])} != {1, 2}:
        assert time.monotonic() < deadline, "energy of both copies never arrived"
        time.sleep(0.5)

    # Not back: the same forecast, then region A a little greener (under the bar), later on.
    for hours, (a, b) in ((0, (400, 100)), (2, (100, 104)), (4, (100, 104))):
        live.clock.shift += timedelta(hours=hours)
        live.trace(a_g_per_kwh=a, b_g_per_kwh=b)
        live.cycle()
        assert live.job(job_id).state is JobState.RUNNING
        # It stays because the decision says so, not because the step skips it.
        assert job_id in [j.id for j in live.service.ctx.store.running_deployments()]
    final = live.job(job_id)
    assert (final.region, len(final.relocations)) == (B, 1)
    assert live.kinds(job_id).count("relocated") == 1

    # Judged on actuals: the new copy's energy since the switch, priced where it was and where
    # it went (plus the old copy's overlap), as the savings view reports it.
    live.actuals(a_g_per_kwh=300, b_g_per_kwh=120)
    judged = requests.get(
        f"{live.url}/v1/deployments/{job_id}/relocations", headers=live.headers, timeout=TIMEOUT_S
    ).json()["data"]
    assert len(judged) == 1
    assert judged[0]["expected_saving_g"] == pytest.approx(history.expected_saving_g)
    assert judged[0]["measured_saving_g"] is not None
    reports = live.service.ctx.store.energy_reports([job_id])
    new_j = sum(
        r.energy_j for r in reports if r.attempt == 2 and r.interval_start >= history.switched_at
    )
    old_j = sum(
        r.energy_j for r in reports if r.attempt == 1 and r.interval_end > history.started_at
    )
    assert new_j > 0
    # Flat actuals, PUE 1: (stayed - moved) = E_new x (300 - 120) - E_overlap x 300, in g.
    expected_g = (new_j * (300 - 120) - old_j * 300) / 3.6e6
    assert judged[0]["measured_saving_g"] == pytest.approx(expected_g, rel=1e-6, abs=1e-9)
    # The savings report credits the move: each copy priced where it ran, the expected saving.
    report = requests.get(
        f"{live.url}/v1/reports/savings",
        params={"format": "json"},
        headers=live.headers,
        timeout=TIMEOUT_S,
    ).json()
    row = next(j for j in report["jobs"] if j["job_id"] == job_id)
    assert (row["region"], row["relocations"]) == (B, 1)
    assert row["relocation_expected_saving_g"] == pytest.approx(history.expected_saving_g)


@pytest.mark.parametrize(
    ("in_b", "why", "final_b"),
    [
        # The copy reports an endpoint nothing listens on, and never answers.
        (
            'echo http://127.0.0.1:9 > "$GREENLIGHT_ENDPOINT_FILE"; exec sleep 600',
            ["not healthy within", "http://127.0.0.1:9"],
            RunStatus.STOPPED,
        ),
        # The copy fails at once.
        ("exit 3", ["the new copy", "failed"], RunStatus.FAILED),
    ],
    ids=["never-healthy", "fails"],
)
def test_a_new_copy_that_never_gets_healthy_is_stopped_and_the_move_rolled_back(
    live: Live, in_b: str, why: list[str], final_b: RunStatus
) -> None:
    # The same entrypoint serves in region A and misbehaves in region B.
    entrypoint = f'case "$GREENLIGHT_RAY_RESOURCES" in *{B_LABEL}*) {in_b};; *) exec {SERVE};; esac'
    live.settings = live.settings.model_copy(
        update={"relocation": live.settings.relocation.model_copy(update={"health_timeout_s": 8})}
    )
    live.restart()
    live.trace(a_g_per_kwh=100, b_g_per_kwh=400)
    job_id = live.submit(f"sh -c {shlex.quote(entrypoint)}")
    job = _running_with_endpoint(live, job_id)

    live.clock.shift += timedelta(hours=2)
    live.trace(a_g_per_kwh=400, b_g_per_kwh=100)
    live.service.plan_cycle()
    assert live.job(job_id).state is JobState.RELOCATING
    back = live.drive_until(job_id, lambda j: j.state is JobState.RUNNING and j.move is None)

    assert (back.region, back.submission_id, back.endpoint) == (A, f"{job_id}-1", job.endpoint)
    assert back.relocations == ()
    assert (back.attempt, back.move_attempts) == (2, 1)  # the try used an attempt, no retry
    assert live.status(A, f"{job_id}-1") is RunStatus.RUNNING
    live.wait_status(B, f"{job_id}-2", final_b)
    events = live.service.events(job_id, ADMIN)
    failed = [e for e in events if e.kind == "relocation-failed"]
    assert len(failed) == 1
    for words in why:
        assert words in failed[0].reason
    assert requests.get(f"{job.endpoint}/healthz", timeout=TIMEOUT_S).status_code == 200
    # The minimum stay counts from the rollback: no second try at once.
    live.cycle()
    assert live.job(job_id).state is JobState.RUNNING


def test_a_deployment_cancelled_mid_move_has_both_copies_stopped(live: Live) -> None:
    live.trace(a_g_per_kwh=100, b_g_per_kwh=400)
    job_id = live.submit(SERVE)
    _running_with_endpoint(live, job_id)
    live.clock.shift += timedelta(hours=2)
    live.trace(a_g_per_kwh=400, b_g_per_kwh=100)
    live.service.plan_cycle()
    moving = live.job(job_id)
    assert moving.state is JobState.RELOCATING
    assert moving.move is not None
    assert moving.move.submitted

    live.service.cancel(job_id, ADMIN)
    live.service.reconcile()  # the move's other copy is stopped and the move cleared

    ended = live.job(job_id)
    assert (ended.state, ended.move) == (JobState.CANCELLED, None)
    live.wait_status(A, f"{job_id}-1", RunStatus.STOPPED)
    live.wait_status(B, f"{job_id}-2", RunStatus.STOPPED)
    stopped = [e.reason for e in live.service.events(job_id, ADMIN) if e.kind == COPY_STOPPED]
    assert stopped == ["attempt 2 stopped: the job is cancelled"]
