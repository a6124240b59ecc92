"""Submit-time checks of a deployment's Ray Serve application."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from scheduler.domain import InvalidJobSpec, JobKind, Resources
from scheduler.domain.serve import ServeApp
from scheduler.planning.serve_validation import check_serve
from tests.fakes.store import make_spec

GOOD = {
    "deployments": [
        {"name": "MlpService", "num_replicas": 2, "ray_actor_options": {"num_gpus": 0.25}}
    ],
    "args": {"seed": 1},
}


def spec(config: dict[str, Any], *, gpus: float = 0.5, path: str = "pkg.mod:app") -> Any:
    return dataclasses.replace(
        make_spec(kind=JobKind.DEPLOYMENT, expected_duration_s=None, max_delay_s=None),
        resources=Resources(gpus=gpus),
        serve=ServeApp(import_path=path, config=config),
    )


def test_a_good_application_passes() -> None:
    check_serve(spec(GOOD))
    check_serve(spec({}, gpus=0))  # CPU-only replicas, the default deployments


@pytest.mark.parametrize(
    ("bad", "field", "reason"),
    [
        (spec(GOOD, gpus=0.25), "serve.config.deployments", "ask for 0.5 GPUs in all"),
        (spec(GOOD, path="not a path"), "serve.import_path", "module:attribute"),
        (spec({"route_prefix": "/x"}), "serve.config.route_prefix", "set by Greenlight"),
        (spec({"name": "x"}), "serve.config.name", "set by Greenlight"),
        (spec({"replicas": 2}), "serve.config.replicas", "unknown key"),
        (spec({"deployments": {}}), "serve.config.deployments", "must be a list"),
        (spec({"deployments": [{"num_replicas": 1}]}), "serve.config.deployments.0", "name"),
        (
            spec({"deployments": [{"name": "a", "num_replicas": "auto"}]}),
            "serve.config.deployments.0.num_replicas",
            "whole number",
        ),
        (
            spec({"deployments": [{"name": "a", "autoscaling_config": {}}]}),
            "serve.config.deployments.0.autoscaling_config",
            "fixed num_replicas",
        ),
        (
            spec({"deployments": [{"name": "a", "ray_actor_options": {"num_gpus": 0.33333}}]}),
            "serve.config.deployments.0.ray_actor_options.num_gpus",
            "1/10,000",
        ),
    ],
)
def test_bad_applications_name_the_field(bad: Any, field: str, reason: str) -> None:
    with pytest.raises(InvalidJobSpec) as caught:
        check_serve(bad)
    assert caught.value.field == field
    assert reason in str(caught.value)


def test_only_deployments_are_serve_applications() -> None:
    training = dataclasses.replace(spec(GOOD), kind=JobKind.TRAINING)
    with pytest.raises(InvalidJobSpec, match="deployments only"):
        check_serve(training)
