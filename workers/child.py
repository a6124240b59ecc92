"""The user's command as a child process in its own process group.

Its own group lets the runner forward a signal to everything the command started (a shell
wrapper and the Python under it alike) with one ``killpg``, and keeps a terminal's Ctrl-C
reaching the runner first, which then forwards it.

Started with ``posix_spawn`` and waited on through a pidfd: the runner runs before every job's
command, so it does not import ``subprocess`` (and what that pulls in), and it notices the
command's end when it happens rather than at ``Popen.wait``'s next poll (up to 50 ms later).
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import time
from collections.abc import Mapping, Sequence

SHELL = "/bin/sh"
EXIT_NOT_EXECUTABLE = 126
EXIT_NOT_FOUND = 127
# Python ignores these at start-up; a command must get the defaults (as subprocess restores).
_DEFAULT_IN_CHILD = tuple(
    s for s in (getattr(signal, n, None) for n in ("SIGPIPE", "SIGXFZ", "SIGXFSZ")) if s
)
_POLL_MAX_S = 0.05  # where no pidfd exists: how late an end may be noticed, at most


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
    """A started command. Raises FileNotFoundError / PermissionError when it cannot start
    (``argv[0]`` without a slash is looked up on the PATH of ``env``, as a shell would)."""

    def __init__(self, argv: Sequence[str], env: Mapping[str, str] | None = None) -> None:
        self.pid = _spawn(list(argv), dict(os.environ if env is None else env))
        self._returncode: int | None = None
        try:
            self._pidfd: int | None = os.pidfd_open(self.pid)
        except (AttributeError, OSError):  # not Linux, or a kernel older than 5.3
            self._pidfd = None

    def wait(self, timeout_s: float) -> int | None:
        """The raw return code (``-N`` when signal N killed it) once it has exited, else None
        after ``timeout_s``. Signal handlers run meanwhile (PEP 475 resumes the wait)."""
        if self._returncode is not None:
            return self._returncode
        if self._pidfd is not None:
            poller = select.poll()
            poller.register(self._pidfd, select.POLLIN)
            if not poller.poll(max(0, int(timeout_s * 1000))):
                return None
            return self._reap(0)
        deadline_s = time.monotonic() + timeout_s
        delay_s = 0.0005
        while (code := self._reap(os.WNOHANG)) is None:
            left_s = deadline_s - time.monotonic()
            if left_s <= 0:
                return None
            delay_s = min(delay_s * 2, left_s, _POLL_MAX_S)
            time.sleep(delay_s)
        return code

    def _reap(self, flags: int) -> int | None:
        pid, status = os.waitpid(self.pid, flags)
        if pid == 0:
            return None
        self._returncode = os.waitstatus_to_exitcode(status)
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None
        return self._returncode

    def send_signal(self, signum: int) -> None:
        """Deliver ``signum`` to the child's whole process group; a gone group is fine."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


def _spawn(argv: list[str], env: dict[str, str]) -> int:
    """Start ``argv`` in a new process group; its pid. A bare name is looked up on the
    command's own ``PATH`` (not the runner's), as ``execvpe`` does: a missing file tries the
    next folder, and one found but not executable is reported if nothing runs."""
    name = argv[0]
    if os.path.dirname(name):
        candidates = [name]
    else:
        candidates = [os.path.join(folder, name) for folder in os.get_exec_path(env)]
    refused: PermissionError | None = None
    for path in candidates:
        try:
            return os.posix_spawn(path, argv, env, setpgroup=0, setsigdef=_DEFAULT_IN_CHILD)
        except (FileNotFoundError, NotADirectoryError):
            continue
        except PermissionError as e:
            refused = refused or e
    if refused is not None:
        raise refused
    raise FileNotFoundError(2, "No such file or directory", name)
