"""The runner's private scratch folders (real files under pytest's tmp_path)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from workers.scratch import private_folder, remove_folder, temp_root


def test_a_private_folder_is_new_unguessable_and_closed_to_others(tmp_path: Path) -> None:
    first = Path(private_folder("greenlight-units-", root=str(tmp_path)))
    second = Path(private_folder("greenlight-units-", root=str(tmp_path)))
    assert first != second
    assert first.parent == tmp_path
    assert first.name.startswith("greenlight-units-")
    assert len(first.name) == len("greenlight-units-") + 12
    assert stat.S_IMODE(first.stat().st_mode) & 0o077 == 0


def test_a_planted_name_is_never_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    planted = tmp_path / "elsewhere"
    planted.mkdir()
    names = iter([b"\x00" * 6, b"\x00" * 6, b"\x01" * 6])
    monkeypatch.setattr(os, "urandom", lambda n: next(names))
    (tmp_path / ("p-" + "00" * 6)).symlink_to(planted)  # someone guessed the first name
    made = private_folder("p-", root=str(tmp_path))
    assert made == str(tmp_path / ("p-" + "01" * 6))
    assert not Path(made).is_symlink()


def test_remove_folder_takes_the_files_and_what_else_is_in_it(tmp_path: Path) -> None:
    folder = Path(private_folder("f-", root=str(tmp_path)))
    (folder / "units.json").write_text("{}")
    (folder / ".units.json.x.tmp").write_text("")
    remove_folder(str(folder))
    assert not folder.exists()
    nested = Path(private_folder("f-", root=str(tmp_path)))
    (nested / "sub").mkdir()
    (nested / "sub" / "file").write_text("x")
    remove_folder(str(nested))
    assert not nested.exists()
    remove_folder(str(nested))  # gone already: fine


def test_temp_root_follows_tempfiles_order() -> None:
    assert temp_root({"TMP": "/c", "TEMP": "/b"}) == "/b"
    assert temp_root({"TMPDIR": "/a", "TEMP": "/b"}) == "/a"
    assert temp_root({}) == "/tmp"
