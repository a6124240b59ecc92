"""``--array`` ranges and job-file grids expand into the job bodies a batch submits."""

from __future__ import annotations

import pytest

from scheduler.cli.arrays import expand, grid_points, parse_array, substitute
from scheduler.cli.errors import CliError


@pytest.mark.parametrize(
    ("text", "indices"),
    [
        ("0-4", [0, 1, 2, 3, 4]),
        ("0-9:3", [0, 3, 6, 9]),
        ("1,5,7", [1, 5, 7]),
        ("0-2,8,10-20:5, 2", [0, 1, 2, 8, 10, 15, 20]),
        ("7", [7]),
    ],
)
def test_array_ranges(text: str, indices: list[int]) -> None:
    assert parse_array(text) == indices


@pytest.mark.parametrize("text", ["", "a-b", "5-1", "0-9:0", "1,,2", "-3", "0-2000000"])
def test_bad_array_ranges_are_refused(text: str) -> None:
    with pytest.raises(CliError, match="--array"):
        parse_array(text)


def test_every_index_gets_its_env_and_substitutions() -> None:
    body = {"name": "sweep", "entrypoint": "python t.py --seed {index} ${HOME} {other}"}
    jobs = expand(body, parse_array("0-999"))
    assert len(jobs) == 1000
    last = jobs[-1]
    assert last["entrypoint"] == "python t.py --seed 999 ${HOME} {other}"
    env = last["runtime_env"]["env_vars"]
    assert env["GREENLIGHT_ARRAY_INDEX"] == env["SLURM_ARRAY_TASK_ID"] == "999"
    assert last["name"] == "sweep[999]"
    assert "runtime_env" not in body  # the template is not changed


def test_a_grid_makes_one_job_per_combination_with_params_in_env() -> None:
    body = {
        "name": "lr{lr}",
        "entrypoint": "train --lr {lr} --bs {bs}",
        "runtime_env": {"env_vars": {"KEEP": "1"}},
        "grid": {"lr": [0.1, 0.01], "bs": [32, 64, 128]},
    }
    jobs = expand(body, None)
    assert len(jobs) == 6
    assert [j["entrypoint"] for j in jobs[:3]] == [
        "train --lr 0.1 --bs 32",
        "train --lr 0.1 --bs 64",
        "train --lr 0.1 --bs 128",
    ]
    env = jobs[4]["runtime_env"]["env_vars"]
    assert env == {
        "KEEP": "1",
        "GREENLIGHT_ARRAY_INDEX": "4",
        "SLURM_ARRAY_TASK_ID": "4",
        "GREENLIGHT_PARAM_LR": "0.01",
        "GREENLIGHT_PARAM_BS": "64",
    }
    assert jobs[4]["name"] == "lr0.01"
    assert all("grid" not in j for j in jobs)
    # with an array too, every index runs every combination
    assert len(expand(body, [0, 1])) == 12


@pytest.mark.parametrize("grid", [{}, {"lr": []}, {"lr": 0.1}, {"l-r": [1]}, [1, 2]])
def test_bad_grids_are_refused(grid: object) -> None:
    with pytest.raises(CliError, match="grid"):
        grid_points(grid)


def test_substitute_leaves_unknown_braces() -> None:
    assert substitute("{a} {b} ${c} {{a}}", {"a": 1}) == "1 {b} ${c} {1}"
