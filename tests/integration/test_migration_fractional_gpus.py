"""Migration 0008 on SQLite and PostgreSQL: whole GPU counts survive the change to a float
column, a share of a GPU is stored and read back through the store, and downgrading rounds
shares up to one whole GPU."""

from __future__ import annotations

import dataclasses

import sqlalchemy as sa

from scheduler.domain import JobKind, Resources
from scheduler.store import SqlStore, create_store_engine
from scheduler.store.migrate import downgrade, upgrade
from tests.fakes.store import make_event, make_job


def _gpus(url: str) -> dict[str, float]:
    engine = create_store_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT id, gpus FROM jobs ORDER BY id")).all()
    finally:
        engine.dispose()
    return {str(row[0]): float(row[1]) for row in rows}


def _add(url: str, job_id: str, kind: JobKind, gpus: float) -> None:
    store = SqlStore(create_store_engine(url))
    base = make_job(job_id)
    spec = dataclasses.replace(base.spec, kind=kind, resources=Resources(gpus=gpus))
    store.add_job(dataclasses.replace(base, spec=spec), make_event(job_id))
    store.close()


def test_0008_stores_shares_rounds_them_up_on_downgrade_and_keeps_whole_counts(
    database_url: str,
) -> None:
    upgrade(database_url)
    _add(database_url, "old", JobKind.TRAINING, 2)
    _add(database_url, "svc", JobKind.DEPLOYMENT, 0.25)
    assert _gpus(database_url) == {"old": 2.0, "svc": 0.25}

    downgrade(database_url, "0007")

    assert _gpus(database_url) == {"old": 2.0, "svc": 1.0}

    upgrade(database_url)

    store = SqlStore(create_store_engine(database_url))
    try:
        gpus = store.get_job("old").spec.resources.gpus
        assert gpus == 2
        assert isinstance(gpus, int)
        assert store.get_job("svc").spec.resources.gpus == 1
    finally:
        store.close()
