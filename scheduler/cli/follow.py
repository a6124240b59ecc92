"""Following a job from the CLI, as ``ray job submit`` and ``ray job logs -f`` do: poll the
job and its logs, print new output as it arrives, stop when the job ends.

Logs go to stdout (only what is new since the last poll); state changes go to stderr, so
``greenlight submit --wait ... > out.txt`` keeps the job's output clean.
"""

from __future__ import annotations

import sys
import time
from typing import Any
from urllib.parse import quote

from scheduler.cli.client import ApiClient

TERMINAL_STATES = frozenset({"succeeded", "failed", "cancelled"})
POLL_S = 1.0
# A failed or cancelled job with no exit code of its own still fails the command.
EXIT_FAILED = 1


def follow(
    client: ApiClient, job_id: str, *, logs: bool = True, poll_s: float = POLL_S
) -> dict[str, Any]:
    """Poll ``job_id`` until it ends, printing its new log output (when ``logs``) and each
    state change; returns the job as the API last showed it. Raises CliError (from the client)
    when the API fails."""
    path = f"/v1/jobs/{quote(job_id, safe='')}"
    printed = 0
    state = None
    while True:
        job: dict[str, Any] = client.get(path)
        if job["state"] != state:
            state = job["state"]
            sys.stderr.write(f"{job_id}: {state}\n")
        if logs:
            text = str(client.get(f"{path}/logs").get("logs") or "")
            if len(text) < printed:  # a new attempt: its log starts again
                printed = 0
            if len(text) > printed:
                sys.stdout.write(text[printed:])
                sys.stdout.flush()
                printed = len(text)
        if state in TERMINAL_STATES:
            return job
        time.sleep(poll_s)


def exit_code_of(job: dict[str, Any]) -> int:
    """0 for a job that succeeded; its own exit code when it failed with one; else 1."""
    if job["state"] == "succeeded":
        return 0
    code = job.get("exit_code")
    return code if isinstance(code, int) and code != 0 else EXIT_FAILED
