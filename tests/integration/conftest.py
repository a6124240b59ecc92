"""Integration fixtures. ``ray_cluster``: one real local Ray head shared by the whole session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from scheduler.dispatch.local_ray import LocalRayHead
from tests.ray_cluster import start_test_head


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[LocalRayHead]:
    """A running Ray head on 127.0.0.1 (``.dashboard_url`` is its Jobs API URL, ``.address`` its
    GCS address), token auth disabled. Started on first use (~10 s), stopped at session end.
    Tests share it: give every submission a unique id."""
    head = start_test_head()
    try:
        yield head
    finally:
        head.stop()
