"""``workers.units``: the job-side count of steps or requests, written atomically, never going
back; and ``workers.progress`` reading it."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from workers.progress import ProgressReporter
from workers.units import UNITS_FILE_ENV, UnitCounter, read_units_file, report_units


class Ticks:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.s = 0.0

    def __call__(self) -> float:
        return self.s


def test_the_total_is_written_throttled_and_flushed(tmp_path: Path) -> None:
    path = tmp_path / "units.json"
    ticks = Ticks()
    counter = UnitCounter("steps", path=path, min_interval_s=1.0, monotonic_s=ticks)
    assert counter.add() == 1.0
    assert json.loads(path.read_text()) == {"units": 1.0, "unit": "steps"}
    counter.add(2)  # within a second of the last write: counted, not yet written
    assert counter.total == 3.0
    assert read_units_file(path) == (1.0, "steps")
    ticks.s = 1.0
    counter.add(0.5)
    assert read_units_file(path) == (3.5, "steps")
    counter.add(1)
    counter.flush()
    assert read_units_file(path) == (4.5, "steps")


def test_a_total_never_goes_back(tmp_path: Path) -> None:
    counter = UnitCounter("requests", path=tmp_path / "u.json", min_interval_s=0.0)
    counter.set_total(40)
    counter.set_total(40)  # the same total again is fine
    with pytest.raises(ValueError, match="below the current 40"):
        counter.set_total(39)
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="finite and >= 0"):
            counter.add(bad)
    assert read_units_file(tmp_path / "u.json") == (40.0, "requests")
    with pytest.raises(ValueError, match="unit must be one of steps, requests"):
        UnitCounter("tokens")


def test_the_file_is_replaced_atomically(tmp_path: Path) -> None:
    """A reader polling while a writer counts sees only whole files, each total >= the last,
    and no temporary file is left behind."""
    path = tmp_path / "units.json"
    counter = UnitCounter("steps", path=path, min_interval_s=0.0)
    counter.flush()
    seen: list[float] = []
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            text = path.read_text()  # path always exists: replaced, never truncated
            seen.append(json.loads(text)["units"])

    reader = threading.Thread(target=read)
    reader.start()
    for _ in range(2000):
        counter.add()
    done.set()
    reader.join()
    assert seen, "the reader ran"
    assert seen == sorted(seen)
    assert read_units_file(path) == (2000.0, "steps")
    assert os.listdir(tmp_path) == ["units.json"]


def test_it_counts_without_a_file_outside_greenlight(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(UNITS_FILE_ENV, raising=False)
    counter = UnitCounter("steps")
    assert counter.path is None
    counter.add(3)
    counter.flush()
    assert counter.total == 3.0
    monkeypatch.setenv(UNITS_FILE_ENV, str(tmp_path / "env.json"))
    assert UnitCounter("steps").path == tmp_path / "env.json"


def test_report_units_writes_at_once_to_the_env_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import workers.units

    monkeypatch.setattr(workers.units, "_default", None)
    monkeypatch.setenv(UNITS_FILE_ENV, str(tmp_path / "units.json"))
    report_units(5, "requests")
    report_units(7, "requests")
    assert read_units_file(tmp_path / "units.json") == (7.0, "requests")
    with pytest.raises(ValueError, match="counts requests, not steps"):
        report_units(8, "steps")
    with pytest.raises(ValueError, match="below"):
        report_units(6, "requests")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "{",
        "[]",
        '{"units": "x", "unit": "steps"}',
        '{"units": -1, "unit": "steps"}',
        '{"units": NaN, "unit": "steps"}',
        '{"units": 3}',
        '{"units": 3, "unit": 4}',
    ],
)
def test_a_malformed_file_reads_as_none(tmp_path: Path, text: str) -> None:
    path = tmp_path / "units.json"
    path.write_text(text)
    assert read_units_file(path) is None
    assert read_units_file(tmp_path / "missing.json") is None


def test_the_runner_side_keeps_the_highest_total_it_read(tmp_path: Path) -> None:
    path = tmp_path / "units.json"
    progress = ProgressReporter(None, path, attempt=1)  # no API: read only
    progress.poll()
    assert progress.state.units is None
    path.write_text('{"units": 12, "unit": "steps"}')
    progress.poll()
    path.write_text('{"units": 9, "unit": "steps"}')  # another writer's stale total
    progress.poll()
    state = progress.close(1.0)
    assert (state.units, state.unit, state.sent) == (12.0, "steps", None)
