"""A ``GET /v1/jobs`` page serialized from unvalidated models (``scheduler.api.job_pages``) is
the page the validated models give (``JobPublic.of``, ``JobsPublic``, as FastAPI rendered it
before): plans, Serve apps, dependencies, relocations, shares of a GPU, non-ASCII text."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from scheduler.api.job_pages import page_json
from scheduler.api.schemas import JobPublic, JobsPublic
from scheduler.domain import (
    Job,
    JobKind,
    JobSpec,
    JobState,
    Plan,
    Policy,
    Resources,
    Window,
)
from scheduler.domain.deployments import Relocation
from scheduler.domain.jobs import Dependency, DependencyKind
from scheduler.domain.serve import ServeApp

T0 = datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=UTC)


def jobs() -> list[Job]:
    plain = JobSpec(
        tenant="acme",
        name="trän-ø",
        kind=JobKind.TRAINING,
        entrypoint="python train.py",
        home_region="eu",
        runtime_env={"env_vars": {"SEED": "1"}, "pip": ["torch"], "x": 1e20},
        resources=Resources(gpus=2, cpus=4.0, memory_mb=1024),
        expected_duration_s=3600.0,
        max_delay_s=0.1,
        allowed_regions=("eu", "us"),
        expected_power_w=310.5,
        group_id="g-1",
        after=(Dependency(job_id="j-0", kind=DependencyKind.AFTERANY),),
    )
    served = JobSpec(
        tenant="acme",
        name="llm",
        kind=JobKind.DEPLOYMENT,
        entrypoint="serve",
        home_region="us",
        resources=Resources(gpus=0.25),
        deadline=T0 + timedelta(days=1),
        policy=Policy.NOW,
        serve=ServeApp(import_path="app:app", config={"deployments": [{"name": "d"}]}),
    )
    plan = Plan(
        region="us",
        windows=(Window(region="us", start=T0, end=T0 + timedelta(hours=1)),),
        policy=Policy.GREENLIGHT,
        planned_at=T0,
        forecast_emissions_g=12.5,
        baseline_emissions_g=20.0,
        forecast_issued_at=None,
        note="moved",
    )
    moved = Relocation(
        from_region="eu",
        to_region="us",
        old_attempt=1,
        new_attempt=2,
        started_at=T0,
        switched_at=T0,
        finished_at=T0,
        expected_saving_g=3.0,
        expected_saving_pct=12.0,
        horizon_s=3600.0,
    )
    return [
        Job(id="j-1", spec=plain, state=JobState.PLANNED, created_at=T0, updated_at=T0, plan=plan),
        Job(
            id="j-2",
            spec=served,
            state=JobState.RUNNING,
            created_at=T0,
            updated_at=T0,
            attempt=2,
            region="us",
            started_at=T0,
            endpoint="http://x",
            relocations=(moved,),
        ),
        Job(
            id="j-3",
            spec=plain,
            state=JobState.FAILED,
            created_at=T0,
            updated_at=T0,
            attempt=1,
            finished_at=T0,
            exit_code=-9,
            message="killed",
        ),
    ]


def test_a_page_is_the_validated_models_page() -> None:
    page = jobs()
    for count, cursor, capped in ((3, "abc", False), (None, None, True)):
        validated = JobsPublic(
            data=[JobPublic.of(j) for j in page],
            count=count,
            limit=50,
            offset=0,
            next_cursor=cursor,
            count_capped=capped,
        ).model_dump(mode="json")
        fast = page_json(
            page, count=count, limit=50, offset=0, next_cursor=cursor, count_capped=capped
        )
        assert json.loads(fast) == validated
