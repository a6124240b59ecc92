"""How ``RayServeApps`` builds Serve's declarative config from what the cluster reports: our
application's entry, the applications kept, and Serve's cluster options."""

from __future__ import annotations

from scheduler.dispatch.ray_serve import (
    _app_config,
    _applications,
    _cluster_options,
    _deployed_config,
)
from scheduler.domain.serve import ServeApp

DEFAULT_HTTP = {"host": "0.0.0.0", "port": 8000}


def test_our_entry_is_named_and_routed_by_the_run_and_merges_env() -> None:
    app = ServeApp(
        import_path="pkg.mod:app",
        config={
            "deployments": [{"name": "D", "ray_actor_options": {"num_gpus": 0.25}}],
            "runtime_env": {"env_vars": {"A": "app"}, "pip": ["x"]},
        },
    )
    entry = _app_config(
        "job-1-1",
        app,
        env={"GREENLIGHT_JOB_ID": "job-1", "GREENLIGHT_TOKEN": "secret", "A": "greenlight"},
        runtime_env={"env_vars": {"B": "job"}, "working_dir": "s3://bucket/code.zip"},
    )
    assert entry["name"] == "job-1-1"
    assert entry["route_prefix"] == "/job-1-1"
    assert entry["import_path"] == "pkg.mod:app"
    assert entry["deployments"] == app.config["deployments"]
    assert entry["runtime_env"] == {
        "working_dir": "s3://bucket/code.zip",
        "pip": ["x"],
        "env_vars": {"A": "greenlight", "B": "job", "GREENLIGHT_JOB_ID": "job-1"},
    }


def test_only_declaratively_deployed_applications_can_be_kept() -> None:
    details = {
        "applications": {
            "declared": {"status": "RUNNING", "deployed_app_config": {"name": "declared"}},
            "from-code": {"status": "RUNNING", "deployed_app_config": None},
        }
    }
    apps = _applications(details)
    assert sorted(apps) == ["declared", "from-code"]
    assert _deployed_config(apps["declared"]) == {"name": "declared"}
    assert _deployed_config(apps["from-code"]) is None
    assert _applications({"applications": None}) == {}


def test_a_running_serve_keeps_its_options_a_new_one_gets_ours() -> None:
    running = {
        "controller_info": {"node_id": "n"},
        "proxy_location": "EveryNode",
        "http_options": {"host": "127.0.0.1", "port": 9123, "request_timeout_s": None},
        "applications": {},
    }
    assert _cluster_options(running, DEFAULT_HTTP) == {
        "http_options": {"host": "127.0.0.1", "port": 9123},
        "proxy_location": "EveryNode",
    }
    stopped = {"controller_info": {}, "http_options": {"host": "x", "port": 1}, "applications": {}}
    assert _cluster_options(stopped, DEFAULT_HTTP) == {"http_options": DEFAULT_HTTP}
