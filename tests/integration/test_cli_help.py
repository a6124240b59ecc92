"""Every command's help reads at 80 columns: no line wider than the terminal."""

from __future__ import annotations

from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from scheduler.cli.main import app


def _commands() -> list[tuple[str, ...]]:
    # Typer may vendor click: groups are told by their ``commands``, not by click's class.
    root: Any = typer.main.get_command(app)
    paths: list[tuple[str, ...]] = [()]
    for name, command in root.commands.items():
        paths.append((name,))
        paths.extend((name, sub) for sub in getattr(command, "commands", {}))
    return paths


@pytest.mark.parametrize("path", _commands(), ids=lambda p: " ".join(p) or "greenlight")
def test_help_fits_80_columns(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "80", "NO_COLOR": "1"})

    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output
    wide = [line for line in result.output.splitlines() if len(line) > 80]
    assert wide == []
