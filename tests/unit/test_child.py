"""The command's process: started with posix_spawn, waited on through a pidfd (real processes)."""

from __future__ import annotations

import os
import signal
import stat
import time
from pathlib import Path

import pytest

from workers.child import ChildProcess, exit_code_of


def wait_for(child: ChildProcess, within_s: float = 10.0) -> int:
    returncode = child.wait(within_s)
    assert returncode is not None, "the command did not end"
    return returncode


def test_exit_status_and_signal_death() -> None:
    assert wait_for(ChildProcess(["/bin/sh", "-c", "exit 3"])) == 3
    killed = ChildProcess(["/bin/sh", "-c", "kill -TERM $$"])
    assert wait_for(killed) == -signal.SIGTERM
    assert exit_code_of(-signal.SIGTERM) == 128 + signal.SIGTERM


def test_wait_times_out_while_it_runs_and_then_returns_the_same_code() -> None:
    child = ChildProcess(["/bin/sh", "-c", "sleep 0.3; exit 4"])
    started_s = time.monotonic()
    assert child.wait(0.05) is None
    assert time.monotonic() - started_s < 0.25
    assert wait_for(child) == 4
    assert child.wait(0.0) == 4  # reaped once, remembered


def test_without_a_pidfd_it_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(os, "pidfd_open")
    child = ChildProcess(["/bin/sh", "-c", "sleep 0.1; exit 5"])
    assert child.wait(0.01) is None
    assert wait_for(child) == 5


def test_its_own_process_group_gets_forwarded_signals(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    # The shell and its sleep both belong to the group: one killpg stops both.
    child = ChildProcess(["/bin/sh", "-c", f"sleep 30 & touch {ready}; wait"])
    assert os.getpgid(child.pid) == child.pid != os.getpgid(0)
    deadline_s = time.monotonic() + 10
    while not ready.exists() and time.monotonic() < deadline_s:
        time.sleep(0.01)
    child.send_signal(signal.SIGTERM)
    assert wait_for(child) == -signal.SIGTERM
    child.send_signal(signal.SIGTERM)  # a gone group is fine


def test_sigpipe_is_restored_to_its_default_in_the_command(tmp_path: Path) -> None:
    # Python ignores SIGPIPE; a shell pipeline in the job must still die of it, not loop.
    status = tmp_path / "status"
    assert wait_for(ChildProcess(["/bin/sh", "-c", f"exec cat /proc/self/status > {status}"])) == 0
    ignored = next(
        int(line.split()[1], 16)
        for line in status.read_text().splitlines()
        if line.startswith("SigIgn:")
    )
    assert not ignored & (1 << (signal.SIGPIPE - 1))


def test_a_bare_name_is_found_on_the_commands_own_path(tmp_path: Path) -> None:
    tool = tmp_path / "only-here"
    tool.write_text("#!/bin/sh\nexit 9\n")
    tool.chmod(tool.stat().st_mode | stat.S_IXUSR)
    env = {"PATH": f"/nonexistent:{tmp_path}"}
    assert wait_for(ChildProcess(["only-here"], env)) == 9
    with pytest.raises(FileNotFoundError):
        ChildProcess(["only-here"], {"PATH": "/nonexistent"})


def test_a_file_that_is_not_executable_is_refused(tmp_path: Path) -> None:
    script = tmp_path / "plain.sh"
    script.write_text("exit 0\n")
    with pytest.raises(PermissionError):
        ChildProcess([str(script)])
    with pytest.raises(PermissionError):
        ChildProcess(["plain.sh"], {"PATH": str(tmp_path)})
    with pytest.raises(FileNotFoundError):
        ChildProcess([str(tmp_path / "missing")])
