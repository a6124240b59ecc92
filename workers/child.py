"""The user's command as a child process in its own process group.

Its own group lets the runner forward a signal to everything the command started (a shell
wrapper and the Python under it alike) with one ``killpg``, and keeps a terminal's Ctrl-C
reaching the runner first, which then forwards it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence

SHELL = "/bin/sh"
EXIT_NOT_EXECUTABLE = 126
EXIT_NOT_FOUND = 127


def build_argv(entrypoint: Sequence[str]) -> list[str]:
    """One argument is a shell command line (``/bin/sh -c ARG``), as Ray runs entrypoints;
    several are an argv run as is. Raises ValueError when empty."""
    if not entrypoint:
        raise ValueError("no entrypoint given: use `python -m workers.runner -- <command>`")
    if len(entrypoint) == 1:
        return [SHELL, "-c", entrypoint[0]]
    return list(entrypoint)


def exit_code_of(returncode: int) -> int:
    """A shell-style exit status: ``-N`` (killed by signal N) becomes ``128 + N``."""
    return 128 - returncode if returncode < 0 else returncode


class ChildProcess:
    """A started command. Raises FileNotFoundError / PermissionError when it cannot start."""

    def __init__(self, argv: Sequence[str], env: Mapping[str, str] | None = None) -> None:
        self._popen = subprocess.Popen(
            list(argv), env=dict(env) if env is not None else None, process_group=0
        )

    @property
    def pid(self) -> int:
        return self._popen.pid

    def wait(self, timeout_s: float) -> int | None:
        """The raw return code once it has exited, else None after ``timeout_s``."""
        try:
            return self._popen.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return None

    def send_signal(self, signum: int) -> None:
        """Deliver ``signum`` to the child's whole process group; a gone group is fine."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._popen.pid, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)
