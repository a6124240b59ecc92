"""``greenlight report``: --json, --from/--to (relative forms), --by, one-line usage errors,
and every filter shown in every format."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from scheduler.bootstrap import build_service, start_api_thread
from scheduler.config import load_settings
from scheduler.domain import Role
from tests.fakes.clock import FakeClock
from tests.integration.test_cli import in_process, ok, one_line_error
from tests.integration.test_savings_aggregate import T0, ran


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """The API on loopback and an admin token."""
    database_url = f"sqlite:///{tmp_path_factory.mktemp('report') / 'greenlight.db'}"
    service = build_service(
        load_settings(database_url=database_url), clock=FakeClock(T0 + timedelta(days=4))
    )
    ran(service, 20, seed=4)  # finished jobs in March 2023, acme's and globex's
    admin, _ = service.create_token(tenant="ops", role=Role.ADMIN)
    running = start_api_thread(service, "127.0.0.1", 0)
    try:
        yield running.url, admin
    finally:
        running.stop()


def test_json_flag_and_relative_from(server: tuple[str, str]) -> None:
    url, token = server
    before = datetime.now(UTC)
    out = ok(in_process("report", "--json", "--from", "-7d", "--to", "now", url=url, token=token))
    report = json.loads(out)
    after = datetime.now(UTC)
    start = datetime.fromisoformat(report["filters"]["from"].replace("Z", "+00:00"))
    end = datetime.fromisoformat(report["filters"]["to"].replace("Z", "+00:00"))
    # Second precision at most is lost on the way through the API.
    assert before - timedelta(days=7, seconds=1) <= start <= after - timedelta(days=7)
    assert before - timedelta(seconds=1) <= end <= after
    assert report["start"] == report["filters"]["from"]
    assert report["total"]["jobs"] == 0


def test_by_region_prints_the_accounting_table(server: tuple[str, str]) -> None:
    url, token = server
    table = ok(in_process("report", "--by", "region", url=url, token=token))
    assert "Accounting by region" in table
    assert "DEADLINE_MISSES" in table
    data = json.loads(ok(in_process("report", "--by", "region", "--json", url=url, token=token)))
    assert data["group_by"] == "region"
    assert sum(g["jobs"] for g in data["groups"]) == data["total"]["jobs"] == 20
    accounting = table.split("Accounting by region", 1)[1].splitlines()
    rows: dict[str, list[str]] = {}
    for line in accounting:  # the first row of each key is the accounting table's
        cells = line.replace("│", " ").split()
        if cells:
            rows.setdefault(cells[0], cells)
    for group in data["groups"]:
        cells = rows[group["key"]]  # group, jobs, measured, estimated, ..., misses, moves
        assert cells[1] == str(group["jobs"])
        assert cells[-3] == str(group["deadline_misses"])
        assert cells[-1] == f"{100 * group['moved_in_space_share']:.0f}%"


@pytest.mark.parametrize(
    ("flag", "value", "accepted"),
    [
        ("--by", "colour", "tenant, region, kind, day, week, month, group"),
        ("--period", "fortnight", "day, week, month"),
        ("--from", "yesterday-ish", "now, -7d, -12h"),
    ],
)
def test_bad_values_are_one_line_usage_errors(
    server: tuple[str, str], flag: str, value: str, accepted: str
) -> None:
    url, token = server
    line = one_line_error(in_process("report", flag, value, url=url, token=token), code=2)
    assert flag in line
    assert accepted in line
    assert "pattern" not in line
    assert "regex" not in line.lower()


def test_every_filter_in_every_format(server: tuple[str, str], tmp_path: Path) -> None:
    url, token = server
    flags = ("--tenant", "acme", "--region", "eu-central", "--group", "sweep-1")
    flags += ("--from", "2023-02-01", "--to", "2023-03-01T00:00Z")
    data = json.loads(ok(in_process("report", "--json", *flags, url=url, token=token)))
    assert data["filters"] == {
        "tenant": "acme",
        "region": "eu-central",
        "group_id": "sweep-1",
        "from": "2023-02-01T00:00:00Z",
        "to": "2023-03-01T00:00:00Z",
    }
    words = "tenant acme, region eu-central, array sweep-1, jobs started from 2023-02-01"
    table = ok(in_process("report", *flags, url=url, token=token))
    assert words in " ".join(table.split())
    assert "all jobs" not in table
    assert " - .. -" not in table
    page = ok(in_process("report", "--format", "html", *flags, url=url, token=token))
    assert words in page
    assert "all jobs" not in page
    plain = tmp_path / "report.txt"  # a table into a file is the API's plain text
    ok(in_process("report", *flags, "--output", str(plain), url=url, token=token))
    assert words in plain.read_text()
    body = ok(in_process("report", "--format", "csv", *flags, url=url, token=token))
    (total,) = list(csv.DictReader(io.StringIO(body)))
    assert total["job_id"] == "TOTAL"
    assert total["filters"] == (
        "tenant=acme;region=eu-central;group_id=sweep-1;"
        "from=2023-02-01T00:00:00Z;to=2023-03-01T00:00:00Z"
    )
