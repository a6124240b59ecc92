"""``greenlight token list`` and ``greenlight token revoke``: on the configured database, like
``token create``; listings never show a secret, and a revoked token is refused by the API."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from scheduler.bootstrap import build_service
from scheduler.cli.main import app
from scheduler.config import load_settings
from scheduler.domain import Role, Unauthorized


def _run(database_url: str, *args: str) -> tuple[int, str, str]:
    unset: dict[str, str | None] = {k: None for k in os.environ if k.startswith("GREENLIGHT_")}
    env = {**unset, "GREENLIGHT_DATABASE_URL": database_url}
    result = CliRunner().invoke(app, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


def test_list_shows_no_secret_and_revoke_makes_a_token_useless(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'greenlight.db'}"
    code, out, _ = _run(url, "token", "create", "--tenant", "acme", "--json")
    assert code == 0
    acme = json.loads(out)
    code, out, _ = _run(url, "token", "create", "--tenant", "ops", "--admin", "--json")
    assert code == 0
    admin = json.loads(out)

    code, out, _ = _run(url, "token", "list", "--json")
    assert code == 0
    rows = json.loads(out)
    assert {(r["id"], r["role"], r["revoked"]) for r in rows} == {
        (acme["id"], "user", False),
        (admin["id"], "admin", False),
    }
    assert acme["token"] not in out
    assert admin["token"] not in out
    code, table, _ = _run(url, "token", "list", "--tenant", "acme")
    assert code == 0
    assert acme["id"] in table
    assert admin["id"] not in table

    code, out, _ = _run(url, "token", "revoke", acme["id"])
    assert code == 0
    assert "revoked" in out
    rows = json.loads(_run(url, "token", "list", "--json")[1])
    assert next(r for r in rows if r["id"] == acme["id"])["revoked"] is True
    service = build_service(load_settings(database_url=url))
    with pytest.raises(Unauthorized):
        service.authenticate(acme["token"])
    assert service.authenticate(admin["token"]).role is Role.ADMIN

    code, _, err = _run(url, "token", "revoke", "nope")
    assert code == 1
    assert "nope" in err
