"""The stack's ceiling for ``bench/api_load.py``: FastAPI + SQLAlchemy, validate a job body and
insert one row, nothing else (no auth, no events, no admission).

Run: ``python bench/bare_app.py DATABASE_URL PORT`` (uvicorn, one process, sync route in the
thread pool, as Greenlight's routes are).
"""

from __future__ import annotations

import sys
import uuid
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
import uvicorn
from fastapi import FastAPI
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

metadata = sa.MetaData()
bare_jobs = sa.Table(
    "bare_jobs",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("tenant", sa.String(128), nullable=False),
    sa.Column("name", sa.String(256), nullable=False),
    sa.Column("entrypoint", sa.Text, nullable=False),
    sa.Column("home_region", sa.String(64), nullable=False),
    sa.Column("gpus", sa.Integer, nullable=False),
    sa.Column("expected_duration_s", sa.Float, nullable=True),
    sa.Column("deadline", sa.DateTime(timezone=True), nullable=True),
    sa.Column("max_delay_s", sa.Float, nullable=True),
    sa.Column("runtime_env", sa.JSON, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)


class Resources(BaseModel):
    model_config = ConfigDict(extra="forbid")
    gpus: int = Field(default=0, ge=0)
    cpus: float = Field(default=1.0, gt=0)
    memory_mb: int = Field(default=0, ge=0)


class JobBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(max_length=200)
    entrypoint: str = Field(max_length=10_000)
    home_region: str = Field(max_length=64)
    runtime_env: dict[str, Any] = Field(default_factory=dict)
    resources: Resources = Field(default_factory=Resources)
    expected_duration_s: float | None = Field(default=None, gt=0)
    deadline: AwareDatetime | None = None
    max_delay_s: float | None = Field(default=None, ge=0)


def create_app(url: str) -> FastAPI:
    engine = sa.create_engine(url)
    metadata.create_all(engine)
    app = FastAPI()

    @app.post("/jobs", status_code=201)
    def submit(body: JobBody) -> dict[str, str]:
        job_id = f"b-{uuid.uuid4().hex[:16]}"
        with engine.begin() as conn:
            conn.execute(
                sa.insert(bare_jobs).values(
                    id=job_id,
                    tenant="bench",
                    name=body.name,
                    entrypoint=body.entrypoint,
                    home_region=body.home_region,
                    gpus=body.resources.gpus,
                    expected_duration_s=body.expected_duration_s,
                    deadline=body.deadline,
                    max_delay_s=body.max_delay_s,
                    runtime_env=body.runtime_env,
                    created_at=datetime.now(UTC),
                )
            )
        return {"id": job_id}

    return app


if __name__ == "__main__":
    uvicorn.run(
        create_app(sys.argv[1]),
        host="127.0.0.1",
        port=int(sys.argv[2]),
        log_level="warning",
        access_log=False,
    )
