"""Job arrays and parameter sweeps for ``greenlight submit``: one request for many jobs.

``--array 0-999`` (also ``0-99:2``, ``1,5,7`` or a mix such as ``0-3,8,10-20:5``) makes one
job per index; a job file may give a parameter grid, one job per combination::

    entrypoint = "python train.py --lr {lr} --bs {bs} --seed {index}"
    [grid]
    lr = [0.1, 0.01]
    bs = [32, 64]

Each job gets, in its environment:

* ``GREENLIGHT_ARRAY_INDEX`` and ``SLURM_ARRAY_TASK_ID``: its array index (with a grid and no
  ``--array``, the combination's position, 0 first);
* ``GREENLIGHT_PARAM_<NAME>``: each grid value (``GREENLIGHT_PARAM_LR=0.01``).

In the entrypoint (and the name) ``{index}`` and ``{<name>}`` are replaced by the same values;
other braces (``${HOME}``, ``{unknown}``) are left alone. With both, every index runs every
combination. The jobs go to ``POST /v1/jobs/batch`` in chunks of up to ``BATCH_MAX`` and share
one group id, which ``list --group``, ``cancel --group`` and the report filter on. A chunk is
atomic; an array bigger than one chunk stops at the first refused chunk (those before it stay).
"""

from __future__ import annotations

import copy
import itertools
import re
from collections.abc import Iterator, Mapping
from typing import Any

from scheduler.cli.errors import CliError

BATCH_MAX = 10_000
MAX_JOBS = 1_000_000
_RANGE = re.compile(r"^(\d+)(?:-(\d+)(?::(\d+))?)?$")
_FIELD = re.compile(r"\{(\w+)\}")


def parse_array(text: str) -> list[int]:
    """The indices of ``--array``: ``A``, ``A-B`` (inclusive), ``A-B:STEP``, comma-separated,
    in the order given without repeats. Raises CliError naming the bad part."""
    indices: dict[int, None] = {}
    for part in text.replace(" ", "").split(","):
        match = _RANGE.match(part)
        if match is None:
            raise CliError(f"--array {text!r}: {part!r} is not N, N-M or N-M:STEP")
        first = int(match.group(1))
        last = int(match.group(2)) if match.group(2) is not None else first
        step = int(match.group(3)) if match.group(3) is not None else 1
        if last < first or step < 1:
            raise CliError(f"--array {text!r}: {part!r} must count up by a step of 1 or more")
        if len(indices) + (last - first) // step + 1 > MAX_JOBS:
            raise CliError(f"--array {text!r}: more than {MAX_JOBS} jobs")
        indices.update(dict.fromkeys(range(first, last + 1, step)))
    return list(indices)


def grid_points(grid: Any) -> list[dict[str, Any]]:
    """Every combination of a ``grid`` table (name -> list of values), the first name varying
    slowest. Raises CliError for anything but a table of non-empty lists."""
    if not isinstance(grid, Mapping) or not grid:
        raise CliError("grid: must be a table of parameter name -> list of values")
    for name, values in grid.items():
        if not re.fullmatch(r"\w+", str(name)):
            raise CliError(f"grid: {name!r} is not a valid parameter name (letters, digits, _)")
        if not isinstance(values, list) or not values:
            raise CliError(f"grid.{name}: must be a non-empty list of values")
    names = [str(n) for n in grid]
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*grid.values())]


def expand(body: Mapping[str, Any], array: list[int] | None) -> list[dict[str, Any]]:
    """The job bodies an array and/or the body's ``grid`` make (``grid`` itself removed)."""
    base = {k: v for k, v in body.items() if k != "grid"}
    points = grid_points(body["grid"]) if "grid" in body else [{}]
    if array is not None and len(array) * len(points) > MAX_JOBS:
        raise CliError(f"{len(array)} indices x {len(points)} grid points: more than {MAX_JOBS}")
    pairs: Iterator[tuple[int, dict[str, Any]]] = (
        enumerate(points) if array is None else ((i, p) for i in array for p in points)
    )
    return [_one(base, index, params) for index, params in pairs]


def _one(base: Mapping[str, Any], index: int, params: Mapping[str, Any]) -> dict[str, Any]:
    job = copy.deepcopy(dict(base))
    values = {"index": index, **params}
    runtime_env = job.setdefault("runtime_env", {})
    env = runtime_env.setdefault("env_vars", {})
    env["GREENLIGHT_ARRAY_INDEX"] = env["SLURM_ARRAY_TASK_ID"] = str(index)
    for name, value in params.items():
        env[f"GREENLIGHT_PARAM_{name.upper()}"] = str(value)
    if isinstance(job.get("entrypoint"), str):
        job["entrypoint"] = substitute(job["entrypoint"], values)
    label = ",".join(f"{k}={v}" for k, v in params.items()) or str(index)
    raw = str(job.get("name") or "job")
    name = substitute(raw, values)
    job["name"] = name if name != raw else f"{raw}[{label}]"
    return job


def substitute(text: str, values: Mapping[str, Any]) -> str:
    """``{name}`` replaced by ``values[name]`` for the names given; other braces unchanged."""
    return _FIELD.sub(lambda m: str(values[m[1]]) if m[1] in values else m[0], text)


def chunks(bodies: list[dict[str, Any]], size: int = BATCH_MAX) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(bodies), size):
        yield bodies[start : start + size]


def submit_array(client: Any, bodies: list[dict[str, Any]]) -> dict[str, Any]:
    """POST ``bodies`` to ``/v1/jobs/batch`` chunk by chunk under one group id; returns
    ``{"group_id", "count", "ids"}`` over every chunk. API errors propagate (as CliError from
    the client), after the chunks already accepted."""
    group_id: str | None = None
    ids: list[str] = []
    for chunk in chunks(bodies):
        payload: dict[str, Any] = {"jobs": chunk}
        if group_id is not None:
            payload["group_id"] = group_id
        answer = client.post("/v1/jobs/batch", payload)
        group_id = group_id or answer.get("group_id")
        ids.extend(answer["ids"])
    return {"group_id": group_id, "count": len(ids), "ids": ids}
