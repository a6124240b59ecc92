"""The wheel carries everything a local command needs: built from the sources, installed into a
fresh venv outside the checkout, then ``greenlight db upgrade``, ``token create`` and a one-job
demo run from an unrelated folder.

The fresh venv installs only the wheel (``--no-deps``); its dependencies come from this venv's
site-packages through a ``.pth`` line, which keeps the test offline and fast. That line adds a
plain path: this venv's editable-install hook (a ``.pth`` inside that folder) is not run, so
``scheduler`` can only come from the wheel, which the test checks.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("pyproject.toml", "README.md", "scheduler", "workers", "migrations", "configs")


def _run(
    cmd: list[str], *, cwd: Path, env: dict[str, str] | None = None, timeout_s: float = 120
) -> str:
    result = subprocess.run(
        cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout_s, check=False
    )
    assert result.returncode == 0, (
        f"{cmd} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    )
    return result.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built from a copy of the sources (building in place would leave build/ and
    *.egg-info in a tree others work in)."""
    src = tmp_path_factory.mktemp("src")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=ignore)
        else:
            shutil.copy2(path, src / name)
    dist = tmp_path_factory.mktemp("dist")
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(dist),
            str(src),
        ],
        cwd=src,
    )
    (built,) = dist.glob("greenlight-*.whl")
    return built


def test_wheel_holds_data_files_and_keeps_torch_out_of_the_control_plane(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        metadata = next(zf.read(n).decode() for n in names if n.endswith(".dist-info/METADATA"))
    expected = {
        "scheduler/_migrations/env.py",
        "scheduler/_migrations/script.py.mako",
        "scheduler/_migrations/versions/0001_initial.py",
        "scheduler/_configs/default.toml",
        "scheduler/forecasts/traces/DE_2023_hourly.csv",
        "scheduler/py.typed",
        "workers/runner.py",
    }
    assert expected <= names
    # Every file of the shipped folders (static assets, templates, traces...) is in the wheel.
    folders = {
        "scheduler": "scheduler",
        "workers": "workers",
        "migrations": "scheduler/_migrations",
        "configs": "scheduler/_configs",
    }
    missing = [
        str(path.relative_to(ROOT))
        for folder, target in folders.items()
        for path in (ROOT / folder).rglob("*")
        if path.is_file()
        and "__pycache__" not in path.parts
        and f"{target}/{path.relative_to(ROOT / folder).as_posix()}" not in names
    ]
    assert missing == [], "add these to [tool.setuptools] packages/package-data"
    requires = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    torch = [r for r in requires if r.split()[1].startswith("torch")]
    nvml = [r for r in requires if r.split()[1].startswith("nvidia-ml-py")]
    assert torch
    assert nvml
    assert all('extra == "worker"' in r for r in torch + nvml), torch + nvml
    assert any(r.split()[1].startswith("ray[default") for r in requires)


@pytest.mark.ray
def test_wheel_installs_and_runs_outside_the_checkout(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=tmp_path)
    python = venv / "bin" / "python"
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "-q",
            "--no-deps",
            str(wheel),
        ],
        cwd=tmp_path,
    )
    site = Path(
        _run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
            cwd=tmp_path,
        ).strip()
    )
    (site / "_greenlight_test_deps.pth").write_text(sysconfig.get_path("purelib") + "\n")

    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    data_home = tmp_path / "xdg-data"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("GREENLIGHT_") and k not in {"PYTHONPATH", "VIRTUAL_ENV"}
    }
    env.update(
        XDG_DATA_HOME=str(data_home),
        HOME=str(tmp_path / "home"),
        PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}",
    )
    where = _run(
        [str(python), "-c", "import scheduler; print(scheduler.__file__)"], cwd=cwd, env=env
    )
    assert where.startswith(str(site)), where

    greenlight = str(venv / "bin" / "greenlight")
    out = _run([greenlight, "db", "upgrade"], cwd=cwd, env=env)
    db = data_home / "greenlight" / "greenlight.db"
    assert str(db) in out
    assert db.is_file()

    token = _run([greenlight, "token", "create", "--tenant", "wheel"], cwd=cwd, env=env)
    assert "glt_" in token
    assert not list(cwd.iterdir()), "a command wrote into the working directory"

    demo = _run(
        [
            greenlight,
            "demo",
            "--jobs",
            "1",
            "--timeout-s",
            "150",
            "--workdir",
            str(tmp_path / "demo"),
        ],
        cwd=cwd,
        env=env,
        timeout_s=240,
    )
    assert "urgent-hotfix" in demo
    assert (tmp_path / "demo" / "savings.html").is_file()
