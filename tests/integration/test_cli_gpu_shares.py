"""``greenlight submit --gpus`` with shares of a GPU against a live API: a deployment's 0.25 goes
through as 0.25, a whole count as an integer, a training share is refused on one line."""

from __future__ import annotations

import json

from tests.integration.test_cli import Live, in_process, live, ok, one_line_error

__all__ = ["live"]  # the module's live API, shared with the CLI tests

DEPLOYMENT = ("--name", "svc", "--home-region", "eu-central", "--kind", "deployment")


def test_gpu_shares_on_the_command_line(live: Live) -> None:
    _, token = live.user()
    argv = ("submit", *DEPLOYMENT, "--json", "--gpus")
    tail = ("--", "python", "-m", "workers.examples.serve_model")
    share = json.loads(ok(in_process(*argv, "0.25", *tail, url=live.url, token=token)))
    assert share["resources"]["gpus"] == 0.25
    whole = json.loads(ok(in_process(*argv, "2", *tail, url=live.url, token=token)))
    assert whole["resources"]["gpus"] == 2
    refused = in_process(
        "submit",
        "--name",
        "train",
        "--home-region",
        "eu-central",
        "--duration-s",
        "600",
        "--gpus",
        "0.5",
        "--",
        "python",
        "train.py",
        url=live.url,
        token=token,
    )
    line = one_line_error(refused)
    assert "resources.gpus" in line
    assert "deployments only" in line
