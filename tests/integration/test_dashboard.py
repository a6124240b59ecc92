"""The admin dashboard: its document against the savings report, its access rules, and the
page itself in a real headless Chromium (Debian's ``chromium``) served by a real uvicorn.

Jobs are taken through plan, claim, run, energy and success by the real store, as the cycles
and a worker would; forecasts come from the replay provider over the shipped traces.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from fastapi.testclient import TestClient
from sqlalchemy import event as sa_event

from scheduler.api.app import create_app
from scheduler.bootstrap import build_service, start_api_thread
from scheduler.config import load_settings
from scheduler.domain import (
    EnergyReport,
    Job,
    JobEvent,
    JobKind,
    JobSpec,
    JobState,
    MeterMethod,
    Plan,
    Policy,
    Resources,
    Role,
    Window,
)
from scheduler.domain.deployments import MovePhase
from scheduler.domain.progress import JobProgress
from scheduler.planning.relocation import RelocationOption, RunningDeployment, _move
from scheduler.service import GreenlightService
from scheduler.service.moving import advance_moves, roll_back
from scheduler.service.relocating import start_move
from tests.fakes.clock import FakeClock
from tests.fakes.cluster import FakeCluster

T0 = datetime(2023, 3, 1, 6, tzinfo=UTC)
ARTIFACTS = Path(os.environ.get("GREENLIGHT_TEST_ARTIFACTS", "test-artifacts")) / "dashboard"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _event(job_id: str, at: datetime, target: JobState) -> JobEvent:
    return JobEvent(
        job_id=job_id, at=at, kind="state", actor="test", reason="test", to_state=target
    )


def ran_job(
    service: GreenlightService,
    clock: FakeClock,
    *,
    tenant: str,
    region: str,
    home: str,
    energy_j: float,
    ran_s: float = 1800.0,
) -> str:
    """A job that started now in ``region``, drew ``energy_j`` over ``ran_s`` and succeeded."""
    store = service.ctx.store
    now = clock.now()
    job_id = f"j-{tenant}-{region}-{int(energy_j)}"
    spec = JobSpec(
        tenant=tenant,
        name=f"train-{tenant}",
        kind=JobKind.TRAINING,
        entrypoint="python train.py",
        home_region=home,
        expected_duration_s=ran_s,
        max_delay_s=6 * 3600.0,
    )
    store.add_job(
        Job(id=job_id, spec=spec, state=JobState.PENDING, created_at=now, updated_at=now),
        _event(job_id, now, JobState.PENDING),
    )
    end = now + timedelta(seconds=ran_s)
    plan = Plan(
        region=region,
        windows=(Window(region=region, start=now, end=end),),
        policy=Policy.GREENLIGHT,
        planned_at=now,
        forecast_emissions_g=1.0,
        baseline_emissions_g=1.0,
    )
    assert store.save_plan(job_id, plan, None)
    assert job_id in [j.id for j in store.claim_due(now, limit=100)]
    store.transition(
        job_id, JobState.RUNNING, _event(job_id, now, JobState.RUNNING), started_at=now
    )
    store.add_energy_reports(
        [
            EnergyReport(
                job_id=job_id,
                attempt=1,
                node="n1",
                device="cpu:package-0",
                interval_start=now,
                interval_end=end,
                energy_j=energy_j,
                method=MeterMethod.RAPL,
            )
        ]
    )
    store.transition(
        job_id,
        JobState.SUCCEEDED,
        _event(job_id, end, JobState.SUCCEEDED),
        finished_at=end,
        exit_code=0,
    )
    return job_id


@pytest.fixture
def service(sqlite_url: str) -> GreenlightService:
    # An in-memory cluster: the moves below submit and stop copies through the real service.
    return build_service(
        load_settings(database_url=sqlite_url), clock=FakeClock(T0), dispatcher=FakeCluster()
    )


@pytest.fixture
def populated(service: GreenlightService) -> dict[str, str]:
    """Two finished jobs (two tenants, two regions), then two hours later a queued one, with
    forecasts and actuals pulled at each step. Returns the tokens by role."""
    clock = service.ctx.clock
    assert isinstance(clock, FakeClock)
    assert set(service.pull_forecasts().values()) == {"ok"}
    ran_job(service, clock, tenant="acme", region="eu-south", home="eu-central", energy_j=3.6e6)
    ran_job(service, clock, tenant="globex", region="us-west", home="us-west", energy_j=7.2e6)
    clock.advance(2 * 3600)
    assert set(service.pull_forecasts().values()) == {"ok"}
    admin, _ = service.create_token(tenant="ops", role=Role.ADMIN)
    user, _ = service.create_token(tenant="acme", role=Role.USER)
    queued = TestClient(create_app(service)).post(
        "/v1/jobs",
        headers={"Authorization": f"Bearer {user}"},
        json={
            "name": "queued",
            "entrypoint": "python train.py",
            "home_region": "eu-central",
            "expected_duration_s": 3600,
            "max_delay_s": 12 * 3600,
        },
    )
    assert queued.status_code == 201, queued.text
    service.plan_cycle()
    return {"admin": admin, "user": user}


def running_deployment(
    service: GreenlightService, clock: FakeClock, name: str, region: str, gpus: float
) -> str:
    """A deployment dispatched to ``region`` (its copy submitted), running and answering."""
    store, ctx = service.ctx.store, service.ctx
    now = clock.now()
    job_id = f"d-{name}"
    spec = JobSpec(
        tenant="acme",
        name=name,
        kind=JobKind.DEPLOYMENT,
        entrypoint="python -m workers.examples.serve_model",
        home_region="eu-central",
        allowed_regions=("eu-central", "eu-south"),
        resources=Resources(gpus=gpus),
    )
    store.add_job(
        Job(id=job_id, spec=spec, state=JobState.PENDING, created_at=now, updated_at=now),
        _event(job_id, now, JobState.PENDING),
    )
    plan = Plan(
        region=region,
        windows=(Window(region=region, start=now, end=now + timedelta(days=7)),),
        policy=Policy.GREENLIGHT,
        planned_at=now,
        forecast_emissions_g=1.0,
        baseline_emissions_g=1.0,
    )
    assert store.save_plan(job_id, plan, None)
    assert job_id in [j.id for j in store.claim_due(now, limit=100)]
    ctx.dispatcher.submit(
        ctx.region(region), f"{job_id}-1", "serve", env={}, gpus=1, cpus=1, memory_mb=1
    )
    store.transition(
        job_id, JobState.RUNNING, _event(job_id, now, JobState.RUNNING), started_at=now
    )
    assert store.set_endpoint(job_id, 1, f"http://127.0.0.1:9{len(name)}01", now)
    return job_id


def _power(job_id: str, attempt: int, start: datetime, end: datetime, watts: float) -> Any:
    return EnergyReport(
        job_id=job_id,
        attempt=attempt,
        node="n1",
        device="gpu:0",
        interval_start=start,
        interval_end=end,
        energy_j=watts * (end - start).total_seconds(),
        method=MeterMethod.NVML_COUNTER,
    )


def _start(service: GreenlightService, job_id: str, to: str, stay_g: float, move_g: float) -> Any:
    """Start a move through the service (its start event and the new copy's submission)."""
    ctx = service.ctx
    job = ctx.store.get_job(job_id)
    assert job.region is not None
    deployment = RunningDeployment(
        job_id=job_id, region=job.region, since=job.started_at or job.created_at, power_w=200
    )
    option = RelocationOption(region=to, stay_g=stay_g, move_g=move_g)
    decision = _move(deployment, option, ctx.config.relocation.policy)
    assert start_move(ctx, job, decision, ctx.clock.now())
    move = ctx.store.get_job(job_id).move
    assert move is not None
    assert move.submitted
    return move


@pytest.fixture
def moved(service: GreenlightService, populated: dict[str, str]) -> dict[str, str]:
    """``populated``, then two half-GPU deployments: ``web`` moved blue/green from eu-central
    to eu-south (its energy reported on both sides, its requests counted) and then tried to
    move back, rolled back; ``api`` runs in eu-south beside it. Actuals are pulled after."""
    clock = service.ctx.clock
    assert isinstance(clock, FakeClock)
    store = service.ctx.store
    web = running_deployment(service, clock, "web", "eu-central", 0.5)
    api = running_deployment(service, clock, "api", "eu-south", 0.5)
    t_start = clock.now()
    clock.advance(600)
    move = _start(service, web, "eu-south", stay_g=100.0, move_g=60.0)
    assert store.set_endpoint(web, move.new_attempt, "http://127.0.0.1:9902", clock.now())
    clock.advance(300)
    switched = replace(
        move,
        phase=MovePhase.DRAINING,
        switched_at=clock.now(),
        drain_until=clock.now() + timedelta(seconds=300),
    )
    assert store.save_move(web, move, switched, [])
    clock.advance(301)
    advance_moves(service.ctx)  # drained: the old copy stops, the move completes
    done = store.get_job(web)
    assert done.move is None
    assert len(done.relocations) == 1
    after = done.relocations[0]
    store.add_energy_reports(
        [
            _power(web, 1, t_start, after.finished_at, 150.0),
            _power(web, 2, after.switched_at, after.switched_at + timedelta(hours=1), 150.0),
            _power(api, 1, t_start, t_start + timedelta(hours=2), 100.0),
        ]
    )
    store.record_progress(JobProgress(job_id=web, attempt=2, units=12_000, unit="requests"))
    store.record_progress(JobProgress(job_id=api, attempt=1, units=3_000, unit="requests"))
    clock.advance(3600)
    back = _start(service, web, "eu-central", stay_g=80.0, move_g=50.0)
    clock.advance(60)
    roll_back(service.ctx, web, back, "the new copy was not healthy within 300 s")
    clock.advance(3600)
    assert set(service.pull_forecasts().values()) == {"ok"}
    return {**populated, "web": web}


def test_dashboard_document_agrees_with_the_savings_report(
    service: GreenlightService,
    populated: dict[str, str],
) -> None:
    http = TestClient(create_app(service))
    admin = {"Authorization": f"Bearer {populated['admin']}"}
    doc = http.get("/v1/dashboard", headers=admin)
    assert doc.status_code == 200, doc.text
    body = doc.json()
    report = http.get("/v1/reports/savings", headers=admin).json()
    assert body["report"]["total"] == report["total"]
    assert body["report"]["by_tenant"] == report["by_tenant"]
    assert body["report"]["by_region"] == report["by_region"]
    assert body["report"]["total"]["energy_kwh"] == pytest.approx(3.0)
    regions = {r["name"]: r for r in body["regions"]}
    assert set(regions) == set(service.ctx.regions)
    for region in regions.values():
        assert region["actual"], f"{region['name']} has no actuals in the last 24 h"
        assert region["forecast"], f"{region['name']} has no forecast"
        assert all(p[1] > 0 for p in region["actual"] + region["forecast"])
    ran = [w for w in regions["eu-south"]["windows"] if w["state"] == "ran"]
    assert [w["job_id"] for w in ran] == ["j-acme-eu-south-3600000"]
    assert ran[0]["start"] == "2023-03-01T06:00:00+00:00"
    assert ran[0]["end"] == "2023-03-01T06:30:00+00:00"
    queue = body["queue"]
    assert [j["name"] for j in queue["jobs"]] == ["queued"]
    assert queue["counts"][queue["jobs"][0]["state"]] == 1


def test_dashboard_shows_recent_relocations_as_the_api_judges_them(
    service: GreenlightService,
    moved: dict[str, str],
) -> None:
    http = TestClient(create_app(service))
    admin = {"Authorization": f"Bearer {moved['admin']}"}
    body = http.get("/v1/dashboard", headers=admin).json()
    relocations = body["relocations"]
    assert relocations["counts"] == {"relocated": 1, "rolled back": 1, "in progress": 0}
    back, done = relocations["moves"]  # newest first
    assert (done["job_id"], done["name"], done["outcome"]) == (moved["web"], "web", "relocated")
    assert (done["from_region"], done["to_region"]) == ("eu-central", "eu-south")
    assert done["expected_saving_g"] == pytest.approx(40.0)
    assert done["expected_saving_pct"] == pytest.approx(40.0)
    judged = http.get(f"/v1/deployments/{moved['web']}/relocations", headers=admin).json()
    [api_move] = judged["data"]
    assert api_move["measured_saving_g"] is not None, "actuals cover the new copy's hour"
    assert done["measured_saving_g"] == pytest.approx(api_move["measured_saving_g"], rel=1e-12)
    assert done["measured_saving_pct"] == pytest.approx(api_move["measured_saving_pct"])
    assert done["at"] == datetime.fromisoformat(api_move["switched_at"]).isoformat()
    # The rolled-back try: its regions and expected saving from its events, and why.
    assert (back["outcome"], back["from_region"], back["to_region"]) == (
        "rolled back",
        "eu-south",
        "eu-central",
    )
    assert back["expected_saving_g"] == pytest.approx(30.0)
    assert back["expected_saving_pct"] == pytest.approx(37.5)
    assert back["measured_saving_g"] is None
    assert "not healthy within 300 s" in back["reason"]


def test_dashboard_sci_and_packing_are_the_reports(
    service: GreenlightService,
    moved: dict[str, str],
) -> None:
    http = TestClient(create_app(service))
    admin = {"Authorization": f"Bearer {moved['admin']}"}
    body = http.get("/v1/dashboard", headers=admin).json()["report"]
    report = http.get("/v1/reports/savings?group_by=kind", headers=admin).json()
    assert body["groups"] == report["groups"]
    kinds = {g["key"]: g for g in body["groups"]}
    assert kinds["deployment"]["functional_unit"] == "requests"
    assert kinds["training"]["sci_g_per_r"] is None  # the training jobs counted no steps
    assert body["packing"] == report["packing"]
    assert body["packing"]["peak_gpus_packed"] < body["packing"]["peak_gpus_unpacked"]


def test_dashboard_reads_do_not_grow_with_the_queue(
    service: GreenlightService,
    populated: dict[str, str],
) -> None:
    """Events of the live jobs come in one read, not one per job."""
    statements: list[str] = []
    engine = service.ctx.store.engine  # type: ignore[attr-defined]

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    admin = service.authenticate(populated["admin"])
    sa_event.listen(engine, "before_cursor_execute", count)
    try:
        service.dashboard(admin)  # the first also rolls the report's hours up and backfills
        statements.clear()
        service.dashboard(admin)
        few = len(statements)
        store, now = service.ctx.store, service.ctx.clock.now()
        for i in range(30):
            spec = JobSpec(
                tenant="acme",
                name=f"q{i}",
                kind=JobKind.TRAINING,
                entrypoint="python train.py",
                home_region="us-west",
                expected_duration_s=600.0,
                max_delay_s=3600.0,
            )
            job_id = f"q-{i}"
            store.add_job(
                Job(id=job_id, spec=spec, state=JobState.PENDING, created_at=now, updated_at=now),
                _event(job_id, now, JobState.PENDING),
            )
            store.add_event(
                JobEvent(job_id=job_id, at=now, kind="warning", actor="test", reason=f"w{i}")
            )
        statements.clear()
        doc = service.dashboard(admin)
    finally:
        sa_event.remove(engine, "before_cursor_execute", count)
    assert len(statements) == few
    assert sum(e["kind"] == "warning" for e in doc["events"]) == 30


def test_dashboard_data_is_for_admins_only(
    service: GreenlightService,
    populated: dict[str, str],
) -> None:
    http = TestClient(create_app(service))
    assert http.get("/v1/dashboard").status_code == 401
    user = {"Authorization": f"Bearer {populated['user']}"}
    assert http.get("/v1/dashboard", headers=user).status_code == 403


def test_dashboard_page_loads_nothing_from_elsewhere(service: GreenlightService) -> None:
    http = TestClient(create_app(service))
    page = http.get("/dashboard")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp
    assert "connect-src 'self'" in csp
    for asset in ("/dashboard/app.js", "/dashboard/style.css"):
        response = http.get(asset)
        assert response.status_code == 200
        # The only URL in the assets is the SVG namespace, which is a name, not a request.
        urls = set(re.findall(r"https?://[^\s\"')]+", response.text))
        assert urls <= {"http://www.w3.org/2000/svg"}, urls
    assert not re.findall(r"https?://", page.text)
    assert http.get("/dashboard/secrets.txt").status_code == 404


# --- in a real browser -----------------------------------------------------------------------


def _chromium(url: str, width: int, height: int, out: Path, *extra: str) -> str:
    """Run headless Chromium on ``url`` and return what it printed (the DOM for --dump-dom)."""
    assert CHROMIUM is not None
    with tempfile.TemporaryDirectory(prefix="gl-chromium-") as profile:
        result = subprocess.run(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                f"--user-data-dir={profile}",
                f"--window-size={width},{height}",
                "--virtual-time-budget=8000",
                "--hide-scrollbars",
                # The browser's own background traffic (time sync, component updates) is off, and
                # no name resolves but loopback: nothing this test starts talks to the outside.
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-features=NetworkTimeServiceQuerying,OptimizationHints,MediaRouter,"
                "AutofillServerCommunication",
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
                *extra,
                url,
            ],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=out,
            check=False,
        )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


@pytest.fixture
def live_url(service: GreenlightService, populated: dict[str, str]) -> Iterator[str]:
    server = start_api_thread(service, "127.0.0.1", 0)
    try:
        yield server.url
    finally:
        server.stop()


def _page_requests(net_log: Path, origin: str) -> list[str]:
    """URLs of the requests the page initiated, from Chromium's net log."""
    log = json.loads(net_log.read_text())
    start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    return [
        e["params"]["url"]
        for e in log["events"]
        if e.get("type") == start_job and e.get("params", {}).get("initiator") == origin
    ]


def _card_values(dom: str) -> dict[str, str]:
    return dict(re.findall(r'data-metric="([^"]+)" data-value="([^"]*)"', dom))


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (.ci/run installs it)")
@pytest.mark.parametrize(("width", "height"), [(1280, 900), (390, 844)], ids=["desktop", "phone"])
def test_dashboard_in_a_real_browser(
    live_url: str,
    moved: dict[str, str],
    width: int,
    height: int,
) -> None:
    populated = moved
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    out = ARTIFACTS.resolve()
    url = f"{live_url}/dashboard#token={populated['admin']}"
    net_log = out / f"netlog-{width}.json"
    dom = _chromium(url, width, height, out, "--dump-dom", f"--log-net-log={net_log}")
    (out / f"dom-{width}.html").write_text(dom)
    assert 'data-state="ready"' in dom, dom[:2000]
    assert 'data-overflow="false"' in dom, f"horizontal overflow at {width} px"
    # Every chart holds a drawn SVG, and the data charts are not empty placeholders.
    charts = re.findall(r'<div (?:id="[^"]+" )?class="chart"[^>]*>(.*?)</div>', dom, re.S)
    assert len(charts) >= 3 + 3 + 1  # time, tenant, region; three regions; queue
    for chart in charts:
        assert re.search(r"<svg[^>]*>.*<(rect|path|line)", chart, re.S), chart[:300]
    for region_chart in re.findall(r'data-region="[^"]+">(.*?)</div>', dom, re.S):
        assert 'data-series="actual"' in region_chart
        assert 'data-series="forecast"' in region_chart
    # The totals shown are the API's.
    api_total = requests.get(
        f"{live_url}/v1/reports/savings",
        timeout=30,
        headers={"Authorization": f"Bearer {populated['admin']}"},
    ).json()["total"]
    shown = _card_values(dom)
    assert int(shown["jobs"]) == api_total["jobs"] == 4
    for metric, key in (
        ("energy", "energy_kwh"),
        ("emissions", "emissions_g"),
        ("baseline", "baseline_g"),
        ("saved", "saved_g"),
    ):
        assert float(shown[metric]) == pytest.approx(api_total[key], rel=1e-12), metric
    # SCI per 1,000 requests and the packing credit are the report's (grouped by kind).
    admin = {"Authorization": f"Bearer {populated['admin']}"}
    by_kind = requests.get(
        f"{live_url}/v1/reports/savings?group_by=kind", timeout=30, headers=admin
    ).json()
    deployments = next(g for g in by_kind["groups"] if g["key"] == "deployment")
    assert deployments["sci_g_per_r"] is not None
    assert float(shown["SCI per 1,000 requests"]) == pytest.approx(
        deployments["sci_g_per_r"], rel=1e-12
    )
    assert shown["SCI per 1,000 steps"] == ""  # the training jobs counted no steps: none
    packing = by_kind["packing"]
    assert float(shown["GPU-hours packed"]) == pytest.approx(packing["gpu_h_packed"], rel=1e-12)
    assert float(shown["GPU-hours unpacked"]) == pytest.approx(packing["gpu_h_unpacked"], rel=1e-12)
    # The relocation is shown, with the measured saving the deployment's own API reports.
    judged = requests.get(
        f"{live_url}/v1/deployments/{populated['web']}/relocations", timeout=30, headers=admin
    ).json()["data"][0]
    row = re.search(
        rf'<tr data-job="{populated["web"]}" data-outcome="relocated">(.*?)</tr>', dom, re.S
    )
    assert row is not None, "the relocation is not shown"
    assert "eu-central → eu-south" in row.group(1)
    measured = re.search(r'data-label="Measured" data-value="([^"]*)"', row.group(1))
    assert measured is not None
    assert float(measured.group(1)) == pytest.approx(judged["measured_saving_g"], rel=1e-12)
    assert 'data-outcome="rolled back"' in dom
    assert "not healthy within 300 s" in dom
    # No request the page made left the machine (the browser's own background calls carry no
    # initiator and cannot resolve a name anyway: see the resolver rules above).
    page_requests = _page_requests(net_log, live_url)
    assert {u.split("#")[0].removeprefix(live_url) for u in page_requests} >= {
        "/dashboard/app.js",
        "/dashboard/style.css",
        "/v1/dashboard",
    }
    outside = [u for u in page_requests if not u.startswith(live_url + "/")]
    assert not outside, outside
    # A tall window, so the screenshot shows the whole page (a phone's is the longer).
    tall = height * (3 if width > 600 else 6)
    _chromium(url, width, tall, out, f"--screenshot={out / f'dashboard-{width}.png'}")
    assert (out / f"dashboard-{width}.png").stat().st_size > 10_000


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (.ci/run installs it)")
def test_dashboard_without_a_token_asks_for_one(live_url: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    dom = _chromium(f"{live_url}/dashboard", 1280, 900, ARTIFACTS.resolve(), "--dump-dom")
    assert 'data-state="login"' in dom
    assert re.search(r'<section id="login"(?! hidden)', dom)


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (.ci/run installs it)")
@pytest.mark.parametrize("width", [1280, 390], ids=["desktop", "phone"])
def test_an_empty_dashboard_says_what_will_fill_it(service: GreenlightService, width: int) -> None:
    admin, _ = service.create_token(tenant="ops", role=Role.ADMIN)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    server = start_api_thread(service, "127.0.0.1", 0)
    try:
        url = f"{server.url}/dashboard#token={admin}"
        dom = _chromium(url, width, 900, ARTIFACTS.resolve(), "--dump-dom")
    finally:
        server.stop()
    (ARTIFACTS / f"dom-empty-{width}.html").write_text(dom)
    assert 'data-state="ready"' in dom, dom[:2000]
    assert 'data-overflow="false"' in dom, f"horizontal overflow at {width} px"
    assert re.search(r'<div id="empty" class="empty"(?! hidden)', dom), "no empty state"
    assert _card_values(dom)["jobs"] == "0"
    for says in ("No relocations yet", "No deployment shared a GPU", "the queue is empty"):
        assert says in dom, says
    assert "no deployment jobs in this period" in dom


def test_dashboard_document_is_json_ready(
    service: GreenlightService,
    populated: dict[str, str],
) -> None:
    doc: Any = service.dashboard(service.authenticate(populated["admin"]))
    assert json.loads(json.dumps(doc, allow_nan=False)) == doc
