"""pyproject lists its packages by hand (migrations/ and configs/ are mapped into the wheel):
every package on disk must be in that list, or the wheel silently leaves it out."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_package_on_disk_is_listed_in_pyproject() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    on_disk = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for top in ("scheduler", "workers")
        for init in (ROOT / top).rglob("__init__.py")
        if "__pycache__" not in init.parts
    }
    assert on_disk - listed == set()
    mapped = {name: ROOT / folder for name, folder in config["package-dir"].items()}
    assert all(folder.is_dir() for folder in mapped.values())
    assert {p for p in listed - on_disk if not any(p.startswith(m) for m in mapped)} == set()
