"""Job files for ``greenlight submit --file``: TOML or JSON with ``JobCreate``'s keys.

```toml
name = "train-mlp"
entrypoint = "python -m workers.examples.train_mlp --steps 200"
home_region = "eu-central"
expected_duration_s = 600
max_delay_s = 21600
[resources]
gpus = 1
```
A deployment may take a share of one GPU (``gpus = 0.25``, in multiples of 1/10,000); the
planner packs shares onto as few GPUs as it can.
Keys are checked by the API (an unknown key is a 422 naming it), not here.
"""

from __future__ import annotations

import json
import tomllib
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

from scheduler.cli.errors import CliError


def load_job_file(path: Path) -> dict[str, Any]:
    """The file's top-level table as a JSON-ready dict. Raises CliError for a missing file, an
    unknown extension or a syntax error, naming the file."""
    suffix = path.suffix.lower()
    if suffix not in (".toml", ".json"):
        raise CliError(f"job file {path}: use a .toml or .json file")
    try:
        raw = path.read_text(encoding="utf-8")
    except OSError as e:
        raise CliError(f"job file {path}: {e.strerror or e}") from None
    try:
        data: Any = tomllib.loads(raw) if suffix == ".toml" else json.loads(raw)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as e:
        raise CliError(f"job file {path}: not valid {suffix[1:].upper()}: {e}") from None
    if not isinstance(data, dict):
        raise CliError(f"job file {path}: the top level must be a table/object of job fields")
    return {str(key): _jsonable(value) for key, value in data.items()}


def _jsonable(value: Any) -> Any:
    """TOML dates and times become ISO-8601 strings (the API then checks for an offset)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    return value


def merge_flags(payload: dict[str, Any], flags: dict[str, Any]) -> dict[str, Any]:
    """Flags given on the command line override the file; nested dicts merge key by key."""
    merged = dict(payload)
    for key, value in flags.items():
        if value is None:
            continue
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_flags(merged[key], value)
        elif not isinstance(value, dict) or value:
            merged[key] = value
    return merged
