"""What Ray and Slurm users type, turned into what the API takes: durations (``90m``, ``2h``,
``1h30m``, ``1.5d``), relative deadlines (``+6h``), runtime-env files and a working directory to
ship with the job.

A local ``working_dir`` is sent as an absolute path: the service hands it to Ray's runtime env
at dispatch, and Ray zips and uploads it to the cluster (as ``ray job submit`` does), so it must
be readable where the service runs; Ray caps the zipped upload at its gRPC message size (512 MiB
by default) and the CLI refuses a folder whose files already exceed that. A remote URI
(``s3://``, ``gs://``, ``https://.../dir.zip``) is passed through: the cluster fetches it.
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from scheduler.cli.errors import CliError

WORKING_DIR_MAX_BYTES = 512 * 1024 * 1024
_UNIT_S = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 7 * 86400.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
# Slurm's --time forms: MM, MM:SS, HH:MM:SS, D-HH[:MM[:SS]].
_CLOCK = re.compile(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?")


def parse_duration_s(text: str | float, *, what: str = "duration") -> float:
    """Seconds in ``text``: a number of seconds, units (``90m``, ``2h``, ``1h30m``, ``1.5d``)
    or Slurm's ``HH:MM:SS`` / ``D-HH:MM``. Raises CliError naming ``what``."""
    if isinstance(text, int | float):
        return float(text)
    value = text.strip().lower().replace(" ", "")
    try:
        return float(value)
    except ValueError:
        pass
    if value and _PART.sub("", value) == "":
        return sum(float(n) * _UNIT_S[u] for n, u in _PART.findall(value))
    if ":" in value or "-" in value:
        match = _CLOCK.fullmatch(value)
        if match:
            days, first, second, third = match.groups()
            if days is not None:  # D-HH[:MM[:SS]]
                parts = [int(days) * 24 + int(first), int(second or 0), int(third or 0)]
            elif third is not None:  # HH:MM:SS
                parts = [int(first), int(second), int(third)]
            else:  # MM:SS
                parts = [0, int(first), int(second or 0)]
            return parts[0] * 3600.0 + parts[1] * 60.0 + parts[2]
    raise CliError(f"{what} {text!r}: use seconds, 90m, 2h, 1h30m, 1.5d or HH:MM:SS")


def parse_deadline(text: str, now: datetime | None = None) -> str:
    """An ISO-8601 deadline: ``+6h`` (any duration after ``+``) is that long from ``now``;
    anything else goes to the API as given (it checks the format and the offset)."""
    value = text.strip()
    if not value.startswith("+"):
        return value
    delta = parse_duration_s(value[1:], what="deadline")
    return ((now or datetime.now(UTC)) + timedelta(seconds=delta)).isoformat()


def load_runtime_env(path: Path) -> dict[str, Any]:
    """A runtime env (``pip``, ``conda``, ``env_vars``, ``working_dir``, ``py_modules``, ...)
    from YAML (as ``ray job submit --runtime-env`` takes), JSON or TOML. A relative
    ``working_dir`` is relative to the file. Raises CliError naming the file."""
    try:
        raw = path.read_text(encoding="utf-8")
    except OSError as e:
        raise CliError(f"runtime env {path}: {e.strerror or e}") from None
    import yaml  # PyYAML comes with ray

    suffix = path.suffix.lower()
    try:
        if suffix == ".json":
            data: Any = json.loads(raw)
        elif suffix == ".toml":
            data = tomllib.loads(raw)
        else:
            data = yaml.safe_load(raw)
    except (ValueError, yaml.YAMLError) as e:  # JSON and TOML errors are ValueErrors
        raise CliError(f"runtime env {path}: {' '.join(str(e).split())}") from None
    if not isinstance(data, dict):
        raise CliError(f"runtime env {path}: the top level must be a mapping")
    if isinstance(data.get("working_dir"), str):
        data["working_dir"] = resolve_working_dir(data["working_dir"], base=path.parent)
    return data


def resolve_working_dir(value: str, *, base: Path | None = None) -> str:
    """A URI as given, or a local folder as an absolute path after checking it exists and
    that its files fit Ray's upload limit. Raises CliError."""
    if "://" in value:
        return value
    folder = Path(value).expanduser()
    if not folder.is_absolute():
        folder = (base or Path.cwd()) / folder
    folder = folder.resolve()
    if not folder.is_dir():
        raise CliError(f"--working-dir {value}: no such directory")
    total = 0
    for path in folder.rglob("*"):
        if path.is_file():
            total += path.stat().st_size
            if total > WORKING_DIR_MAX_BYTES:
                raise CliError(
                    f"--working-dir {value}: more than {WORKING_DIR_MAX_BYTES // 2**20} MiB, "
                    "over Ray's upload limit; use excludes in --runtime-env or a remote URI"
                )
    return str(folder)


def shorthand_fields(payload: dict[str, Any], path: Path) -> dict[str, Any]:
    """A job file with the same shorthands as the flags: ``expected_duration_s`` /
    ``max_delay_s`` as ``"2h"``, ``deadline`` as ``"+6h"``, and a local
    ``runtime_env.working_dir`` relative to the file. Raises CliError."""
    out = dict(payload)
    for key in ("expected_duration_s", "max_delay_s"):
        if isinstance(out.get(key), str):
            out[key] = parse_duration_s(out[key], what=f"{path}: {key}")
    if isinstance(out.get("deadline"), str):
        out["deadline"] = parse_deadline(out["deadline"])
    runtime_env = out.get("runtime_env")
    if isinstance(runtime_env, dict) and isinstance(runtime_env.get("working_dir"), str):
        out["runtime_env"] = {
            **runtime_env,
            "working_dir": resolve_working_dir(runtime_env["working_dir"], base=path.parent),
        }
    return out


def default_name(entrypoint: str) -> str:
    """A job name when none is given, as ``ray job submit`` needs none: the script or module
    the entrypoint runs (``train`` for ``python train.py --lr 1``), else its first word."""
    try:
        words = shlex.split(entrypoint)
    except ValueError:
        words = entrypoint.split()
    for i, word in enumerate(words):
        if word == "-m" and i + 1 < len(words):
            return words[i + 1][:64]
        if word.endswith((".py", ".sh")):
            return Path(word).stem[:64]
    return Path(words[0]).name[:64] if words else "job"


def parse_after(values: list[str]) -> list[dict[str, str]]:
    """``--after`` values as the API's dependencies: ``JOB`` (afterok), ``afterok:J1:J2`` or
    ``afterany:JOB`` (Slurm's ``--dependency`` forms). Raises CliError."""
    out: list[dict[str, str]] = []
    for value in values:
        kind, sep, rest = value.partition(":")
        if not sep:
            kind, rest = "afterok", value
        if kind not in ("afterok", "afterany") or not rest:
            raise CliError(f"--after {value!r}: use JOB, afterok:JOB[:JOB...] or afterany:JOB")
        out.extend({"job_id": job_id, "kind": kind} for job_id in rest.split(":") if job_id)
    return out
