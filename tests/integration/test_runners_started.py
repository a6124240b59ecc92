"""Which dispatched attempts have a started runner: it exchanged its credential for the
attempt's token (both databases, real tokens)."""

from __future__ import annotations

from datetime import UTC, datetime

from scheduler.bootstrap import build_store
from scheduler.config import load_settings
from scheduler.domain import Role
from scheduler.service.tokens import new_token

NOW = datetime(2026, 12, 7, 9, tzinfo=UTC)


def test_only_an_attempt_token_of_that_very_attempt_counts(database_url: str) -> None:
    store = build_store(load_settings(database_url=database_url))
    new_token(store, NOW, tenant="t", role=Role.BOOTSTRAP, name="b", job_id="queued", attempt=1)
    new_token(store, NOW, tenant="t", role=Role.JOB, name="a", job_id="started", attempt=2)
    new_token(store, NOW, tenant="t", role=Role.JOB, name="a", job_id="retried", attempt=1)
    new_token(store, NOW, tenant="t", role=Role.USER, name="u")
    attempts = {"queued": 1, "started": 2, "retried": 2, "unknown": 1}
    assert store.runners_started(attempts) == {"started"}
    assert store.runners_started({}) == set()
    many = {f"job-{i}": 1 for i in range(12_000)} | {"started": 2}  # chunked IN lists
    assert store.runners_started(many) == {"started"}
