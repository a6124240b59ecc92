"""``greenlight`` against a live API (uvicorn on loopback, SQLite file).

The core paths and every kind of failure run the CLI as a real subprocess, as a user's shell
would; the rest run it in-process through Typer's CliRunner (same code, same live server,
without paying an interpreter start per call). One server for the module; each test uses its
own tenant, so tests do not see each other's jobs.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from scheduler.bootstrap import build_service, start_api_thread
from scheduler.cli.main import app
from scheduler.config import load_settings
from scheduler.domain import Role
from scheduler.service import GreenlightService
from tests.fakes.clock import FakeClock

T0 = datetime(2023, 3, 1, 6, tzinfo=UTC)


@dataclass
class Live:
    url: str
    database_url: str
    service: GreenlightService
    admin: str

    def user(self) -> tuple[str, str]:
        """A fresh tenant and its user token."""
        tenant = f"t-{uuid.uuid4().hex[:8]}"
        return tenant, self.service.create_token(tenant=tenant, role=Role.USER)[0]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    database_url = f"sqlite:///{tmp_path_factory.mktemp('cli') / 'greenlight.db'}"
    service = build_service(load_settings(database_url=database_url), clock=FakeClock(T0))
    admin, _ = service.create_token(tenant="ops", role=Role.ADMIN)
    server = start_api_thread(service, "127.0.0.1", 0)
    try:
        yield Live(url=server.url, database_url=database_url, service=service, admin=admin)
    finally:
        server.stop()


@dataclass(frozen=True)
class Outcome:
    returncode: int
    stdout: str
    stderr: str


def _env(url: str | None, token: str | None, env: dict[str, str] | None) -> dict[str, str]:
    full = {"NO_COLOR": "1", "COLUMNS": "250"}
    if url is not None:
        full["GREENLIGHT_URL"] = url
    if token is not None:
        full["GREENLIGHT_TOKEN"] = token
    full.update(env or {})
    return full


def greenlight(
    *args: str, url: str | None = None, token: str | None = None, env: dict[str, str] | None = None
) -> Outcome:
    """Run the CLI in a fresh interpreter, as a user's shell would."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("GREENLIGHT_")}
    full_env.update(_env(url, token, env))
    done = subprocess.run(
        [sys.executable, "-m", "scheduler.cli.main", *args],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return Outcome(done.returncode, done.stdout, done.stderr)


def in_process(
    *args: str, url: str | None = None, token: str | None = None, env: dict[str, str] | None = None
) -> Outcome:
    """Run the CLI in this process (CliRunner) with only the given GREENLIGHT_* variables."""
    unset: dict[str, str | None] = {k: None for k in os.environ if k.startswith("GREENLIGHT_")}
    result = CliRunner().invoke(app, list(args), env={**unset, **_env(url, token, env)})
    return Outcome(result.exit_code, result.stdout, result.stderr)


def ok(result: Outcome) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


def one_line_error(result: Outcome, code: int = 1) -> str:
    """The process failed with ``code`` and said why on exactly one stderr line."""
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("greenlight: error: ")
    assert "Traceback" not in result.stderr
    return lines[0]


JOB_FLAGS = (
    "--name",
    "train",
    "--home-region",
    "eu-central",
    "--duration-s",
    "1800",
    "--max-delay-s",
    "21600",
)


Runner = Callable[..., Outcome]


def submit(live: Live, token: str, *extra: str, run: Runner = greenlight) -> dict[str, Any]:
    argv = ("submit", *JOB_FLAGS, *extra, "--json", "--", "python", "train.py", "--steps", "3")
    job: dict[str, Any] = json.loads(ok(run(*argv, url=live.url, token=token)))
    return job


def test_submit_list_show_cancel(live: Live) -> None:
    tenant, token = live.user()
    job = submit(live, token, "--gpus", "1", "--env", "SEED=7")
    assert job["tenant"] == tenant
    assert job["entrypoint"] == "python train.py --steps 3"
    assert job["resources"]["gpus"] == 1
    assert job["runtime_env"] == {"env_vars": {"SEED": "7"}}

    listed = json.loads(ok(greenlight("list", "--json", url=live.url, token=token)))
    assert listed["count"] == 1
    assert [j["id"] for j in listed["data"]] == [job["id"]]
    table = ok(greenlight("list", url=live.url, token=token))
    assert job["id"] in table
    assert "2023-03-01T06:00:00Z" in table  # created, UTC ISO-8601
    assert "1-1 of 1 jobs" in table

    shown = json.loads(ok(greenlight("show", job["id"], "--json", url=live.url, token=token)))
    assert shown["id"] == job["id"]
    detail = ok(greenlight("show", job["id"], url=live.url, token=token))
    assert "python train.py --steps 3" in detail
    assert "30m00s" in detail  # expected duration

    cancelled = ok(greenlight("cancel", job["id"], url=live.url, token=token))
    assert f"{job['id']}: cancelled" in cancelled
    again = one_line_error(greenlight("cancel", job["id"], url=live.url, token=token))
    assert "409" in again
    assert "cancelled" in again

    events = json.loads(ok(greenlight("events", job["id"], "--json", url=live.url, token=token)))
    assert [e["to_state"] for e in events["data"] if e["kind"] == "state"][-1] == "cancelled"
    assert "-> cancelled" in ok(greenlight("events", job["id"], url=live.url, token=token))
    logs = json.loads(ok(greenlight("logs", job["id"], "--json", url=live.url, token=token)))
    assert logs == {"job_id": job["id"], "logs": ""}


def test_list_filters_and_pages(live: Live) -> None:
    _, token = live.user()
    ids = [submit(live, token, run=in_process)["id"] for _ in range(3)]
    first = json.loads(ok(in_process("list", "--limit", "2", "--json", url=live.url, token=token)))
    rest = json.loads(
        ok(in_process("list", "--limit", "2", "--offset", "2", "--json", url=live.url, token=token))
    )
    assert first["count"] == rest["count"] == 3
    assert sorted(j["id"] for j in first["data"] + rest["data"]) == sorted(ids)
    ok(in_process("cancel", ids[0], url=live.url, token=token))
    cancelled = json.loads(
        ok(in_process("list", "--state", "cancelled", "--json", url=live.url, token=token))
    )
    assert [j["id"] for j in cancelled["data"]] == [ids[0]]


def test_submit_from_job_files_with_flag_overrides(live: Live, tmp_path: Path) -> None:
    _, token = live.user()
    toml_file = tmp_path / "job.toml"
    toml_file.write_text(
        'name = "from-toml"\nentrypoint = "python a.py"\nhome_region = "eu-south"\n'
        "expected_duration_s = 600\ndeadline = 2023-03-01T20:00:00Z\n"
        'allowed_regions = ["eu-south", "eu-central"]\n[resources]\ncpus = 2\n'
    )
    job = json.loads(
        ok(
            in_process(
                "submit",
                "--file",
                str(toml_file),
                "--name",
                "override",
                "--json",
                url=live.url,
                token=token,
            )
        )
    )
    assert job["name"] == "override"
    assert job["entrypoint"] == "python a.py"
    assert job["deadline"] == "2023-03-01T20:00:00Z"
    assert job["resources"]["cpus"] == 2.0
    assert sorted(job["allowed_regions"]) == ["eu-central", "eu-south"]

    json_file = tmp_path / "job.json"
    json_file.write_text(
        json.dumps(
            {
                "name": "from-json",
                "entrypoint": "python b.py",
                "home_region": "us-west",
                "expected_duration_s": 60,
                "max_delay_s": 600,
            }
        )
    )
    job = json.loads(
        ok(
            in_process(
                "submit", "-f", str(json_file), "--gpus", "2", "--json", url=live.url, token=token
            )
        )
    )
    assert (job["name"], job["home_region"], job["resources"]["gpus"]) == (
        "from-json",
        "us-west",
        2,
    )


def test_bad_job_files_and_specs_fail_in_one_line(live: Live, tmp_path: Path) -> None:
    _, token = live.user()
    broken = tmp_path / "job.toml"
    broken.write_text('name = "x\n')
    assert "not valid TOML" in one_line_error(
        greenlight("submit", "--file", str(broken), url=live.url, token=token)
    )
    yaml = tmp_path / "job.yaml"
    yaml.write_text("name: x\n")
    assert ".toml or .json" in one_line_error(
        greenlight("submit", "--file", str(yaml), url=live.url, token=token)
    )
    missing = one_line_error(
        greenlight("submit", "--file", str(tmp_path / "none.json"), url=live.url, token=token)
    )
    assert "none.json" in missing
    zero = one_line_error(
        greenlight(
            "submit",
            "--name",
            "x",
            "--home-region",
            "eu-central",
            "--duration-s",
            "0",
            "--entrypoint",
            "true",
            url=live.url,
            token=token,
        )
    )
    assert "422" in zero
    assert "expected_duration_s" in zero
    naive = one_line_error(
        greenlight(
            "submit",
            *JOB_FLAGS,
            "--deadline",
            "2023-03-02T00:00:00",
            "--entrypoint",
            "true",
            url=live.url,
            token=token,
        )
    )
    assert "deadline" in naive
    no_entry = one_line_error(greenlight("submit", *JOB_FLAGS, url=live.url, token=token))
    assert "entrypoint" in no_entry


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_server_is_one_line(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    line = one_line_error(greenlight("list", url=url, token="glt_x"))
    assert "cannot reach the Greenlight API" in line
    assert url in line


def test_http_errors_are_one_line(live: Live) -> None:
    anonymous = one_line_error(greenlight("list", url=live.url))
    assert "401" in anonymous
    assert "GREENLIGHT_TOKEN" in anonymous
    wrong = one_line_error(greenlight("list", url=live.url, token="glt_wrong"))
    assert "401" in wrong
    _, token = live.user()
    missing = one_line_error(greenlight("show", "j-missing", url=live.url, token=token))
    assert "404" in missing
    assert "j-missing" in missing
    denied = one_line_error(greenlight("forecast", "pull", url=live.url, token=token))
    assert "403" in denied


@pytest.mark.parametrize(
    "args",
    [
        ("list", "--limit", "0"),
        ("list", "--bogus"),
        ("submit", "--gpus", "many"),
        ("frobnicate",),
        ("list", "--state", "sleeping"),
        ("token", "create"),
    ],
)
def test_bad_flags_exit_2_with_one_line(args: tuple[str, ...]) -> None:
    line = one_line_error(greenlight(*args, url="http://127.0.0.1:9", token="x"), code=2)
    assert "--help" in line


def test_regions_and_forecasts(live: Live) -> None:
    _, token = live.user()
    regions = json.loads(ok(in_process("regions", "--json", url=live.url, token=token)))
    assert {r["name"] for r in regions["data"]} == {"eu-central", "eu-south", "us-west"}
    pulled = ok(in_process("forecast", "pull", "eu-central", url=live.url, token=live.admin))
    assert "eu-central: ok" in pulled
    forecast = json.loads(
        ok(in_process("forecast", "show", "eu-central", "--json", url=live.url, token=token))
    )
    assert forecast["points"]
    assert forecast["stale"] is False
    shown = ok(in_process("forecast", "show", "eu-central", url=live.url, token=token))
    assert any(block in shown for block in "▁▂▃▄▅▆▇█")
    assert "^" in shown
    assert "<- best" in shown
    assert "2023-03-01T06:00:00Z" in shown
    table = ok(in_process("regions", url=live.url, token=token))
    assert "eu-central" in table
    assert "DE" in table
    accuracy = json.loads(
        ok(in_process("forecast", "accuracy", "eu-central", "--json", url=live.url, token=token))
    )
    assert accuracy["region"] == "eu-central"
    unknown = one_line_error(in_process("forecast", "show", "atlantis", url=live.url, token=token))
    assert "404" in unknown


def test_report_formats(live: Live, tmp_path: Path) -> None:
    tenant, token = live.user()
    report = json.loads(ok(in_process("report", "--format", "json", url=live.url, token=token)))
    assert report["total"]["jobs"] == 0
    assert "Total: 0 jobs" in ok(in_process("report", url=live.url, token=token))
    csv = ok(in_process("report", "--format", "csv", url=live.url, token=token))
    assert csv.splitlines()[0].startswith("job_id,")
    page = tmp_path / "report.html"
    ok(in_process("report", "--format", "html", "--output", str(page), url=live.url, token=token))
    assert "<html" in page.read_text().lower()
    denied = one_line_error(
        in_process("report", "--tenant", "someone-else", url=live.url, token=token)
    )
    assert "403" in denied
    assert tenant  # the caller's own tenant is the default scope


def test_token_create_works_on_the_database(live: Live) -> None:
    env = {"GREENLIGHT_DATABASE_URL": live.database_url}
    result = in_process("token", "create", "--tenant", "newco", env=env)
    secret = ok(result).strip()
    assert secret.startswith("glt_")
    assert "shown only now" in result.stderr
    listed = json.loads(ok(in_process("list", "--json", url=live.url, token=secret)))
    assert listed["count"] == 0
    admin = json.loads(
        ok(in_process("token", "create", "--tenant", "ops", "--admin", "--json", env=env))
    )
    assert admin["role"] == "admin"
    pulled = ok(in_process("forecast", "pull", "us-west", url=live.url, token=admin["token"]))
    assert "us-west: ok" in pulled


def test_db_upgrade_creates_the_schema(tmp_path: Path) -> None:
    database = tmp_path / "fresh.db"
    out = ok(greenlight("db", "upgrade", env={"GREENLIGHT_DATABASE_URL": f"sqlite:///{database}"}))
    assert "up to date" in out
    with sqlite3.connect(database) as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    assert {"jobs", "job_events", "api_tokens", "alembic_version"} <= tables


def test_bad_config_file_is_one_line(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("regions = []\n")
    line = one_line_error(greenlight("--config", str(config), "db", "upgrade"))
    assert "configuration" in line
