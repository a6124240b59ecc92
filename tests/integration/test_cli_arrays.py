"""``greenlight submit --array`` and job-file grids against a live API (uvicorn, SQLite)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.integration.test_cli import JOB_FLAGS, Live, greenlight, in_process, live, ok

__all__ = ["live"]  # the module-scoped live server fixture, shared with test_cli


def test_an_array_is_one_batch_in_one_group_that_list_and_cancel_use(live: Live) -> None:
    _, token = live.user()
    made = json.loads(
        ok(
            in_process(
                "submit",
                *JOB_FLAGS,
                "--array",
                "0-99:3",
                "--json",
                "--",
                "python",
                "t.py",
                "{index}",
                url=live.url,
                token=token,
            )
        )
    )
    assert made["count"] == 34
    group = made["group_id"]
    page = json.loads(
        ok(
            in_process(
                "list", "--group", group, "--limit", "1000", "--json", url=live.url, token=token
            )
        )
    )
    assert {j["id"] for j in page["data"]} == set(made["ids"])
    by_index = {j["runtime_env"]["env_vars"]["GREENLIGHT_ARRAY_INDEX"]: j for j in page["data"]}
    assert sorted(map(int, by_index)) == list(range(0, 100, 3))
    assert by_index["99"]["entrypoint"] == "python t.py '99'"  # shlex-quoted
    assert by_index["99"]["runtime_env"]["env_vars"]["SLURM_ARRAY_TASK_ID"] == "99"
    out = ok(greenlight("cancel", "--group", group, url=live.url, token=token))
    assert "cancelled 34 jobs" in out


def test_a_job_file_grid_makes_one_job_per_combination(live: Live, tmp_path: Path) -> None:
    _, token = live.user()
    job_file = tmp_path / "sweep.toml"
    job_file.write_text(
        'name = "sweep"\nentrypoint = "python train.py --lr {lr} --bs {bs}"\n'
        'home_region = "eu-central"\nexpected_duration_s = 600\nmax_delay_s = 21600\n'
        "[grid]\nlr = [0.1, 0.01]\nbs = [32, 64]\n"
    )
    out = ok(in_process("submit", "--file", str(job_file), url=live.url, token=token))
    assert out.startswith("submitted 4 jobs in group g-")
    page = json.loads(ok(in_process("list", "--json", url=live.url, token=token)))
    assert sorted(j["entrypoint"] for j in page["data"]) == [
        "python train.py --lr 0.01 --bs 32",
        "python train.py --lr 0.01 --bs 64",
        "python train.py --lr 0.1 --bs 32",
        "python train.py --lr 0.1 --bs 64",
    ]
    envs = [j["runtime_env"]["env_vars"] for j in page["data"]]
    assert {(e["GREENLIGHT_PARAM_LR"], e["GREENLIGHT_PARAM_BS"]) for e in envs} == {
        ("0.1", "32"),
        ("0.1", "64"),
        ("0.01", "32"),
        ("0.01", "64"),
    }


def test_a_refused_array_stores_nothing_and_says_why(live: Live) -> None:
    _, token = live.user()
    result = in_process(
        "submit",
        "--name",
        "x",
        "--home-region",
        "atlantis",
        "--duration-s",
        "60",
        "--array",
        "0-9",
        "--",
        "true",
        url=live.url,
        token=token,
    )
    assert result.returncode != 0
    assert "atlantis" in result.stderr
    page = json.loads(ok(in_process("list", "--json", url=live.url, token=token)))
    assert page["count"] == 0
