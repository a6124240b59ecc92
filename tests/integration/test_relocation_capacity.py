"""What the relocation core is told each region has free (``relocating._free_gpus``), read
from a real store: the GPUs of every started job but the deployments the core counts itself,
from the started jobs' short columns (no full rows), whole GPUs for a share of one."""

from __future__ import annotations

from scheduler.bootstrap import build_service
from scheduler.config import load_settings
from scheduler.domain import JobKind, JobState, Resources
from scheduler.domain.serve import ServeApp
from scheduler.service.relocating import _free_gpus
from tests.fakes.store import make_event, make_job, make_spec


def test_free_gpus_count_every_started_job_but_the_deployments_being_decided(
    sqlite_url: str,
) -> None:
    service = build_service(load_settings(database_url=sqlite_url))
    ctx = service.ctx
    serve = ServeApp(import_path="app:deployment")
    started = [
        ("train", JobState.RUNNING, "eu-central", make_spec(resources=Resources(gpus=2))),
        ("queued", JobState.DISPATCHED, "eu-central", make_spec(resources=Resources(gpus=1))),
        ("waiting", JobState.PLANNED, "eu-central", make_spec(resources=Resources(gpus=4))),
        (
            "share",
            JobState.RUNNING,
            "eu-south",
            make_spec(serve=serve, kind=JobKind.DEPLOYMENT, resources=Resources(gpus=0.25)),
        ),
        (
            "moving",
            JobState.RUNNING,
            "us-west",
            make_spec(serve=serve, kind=JobKind.DEPLOYMENT, resources=Resources(gpus=1)),
        ),
    ]
    for job_id, state, region, spec in started:
        job = make_job(job_id, state=state, spec=spec, region=region, submission_id=f"s-{job_id}")
        ctx.store.add_job(job, make_event(job_id))
    up = {name: ctx.regions[name] for name in ("eu-central", "eu-south", "us-west")}

    free = _free_gpus(ctx, up, {"moving"})

    gpus = {name: region.gpus for name, region in up.items()}
    assert free == {
        "eu-central": gpus["eu-central"] - 3,  # running and dispatched hold theirs; planned not
        "eu-south": gpus["eu-south"] - 1,  # a share of a GPU takes a whole one from the rest
        "us-west": gpus["us-west"],  # the deployment being decided is the core's to count
    }
