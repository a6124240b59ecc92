"""What a job's start pays for: the runner runs before every job's command, on every node."""

from __future__ import annotations

import json
import os
import subprocess
import sys

HEAVY = (
    "requests",
    "urllib3",
    "http.client",
    "ssl",
    "email",
    "pynvml",
    "workers.energy.nvml",
    # A tenth of a trivial job's start each, or more, before the runner went without them:
    "logging",
    "dataclasses",
    "inspect",
    "tempfile",
    "shutil",
    "argparse",
    "subprocess",
    "random",
)

PROBE = """
import runpy, sys, json
sys.argv = ["workers.runner", "--", "/bin/true"]
try:
    runpy.run_module("workers.runner", run_name="__main__")
except SystemExit as e:
    code = e.code
print(json.dumps({"exit": code, "loaded": sorted(m for m in HEAVY if m in sys.modules)}))
""".replace("HEAVY", repr(HEAVY))


def run_probe(**env: str) -> dict[str, object]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GREENLIGHT_")}
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    answer: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return answer


def test_a_cpu_job_loads_no_http_library_no_nvml_and_none_of_the_heavy_stdlib() -> None:
    assert run_probe(GREENLIGHT_GPUS="0") == {"exit": 0, "loaded": []}


def test_a_job_that_may_hold_gpus_probes_nvml() -> None:
    loaded = run_probe()["loaded"]
    assert isinstance(loaded, list)
    assert "workers.energy.nvml" in loaded
    assert "requests" not in loaded
