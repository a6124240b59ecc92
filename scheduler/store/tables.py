"""SQLAlchemy Core tables: the storage shape of the domain records.

Choices worth knowing:

* States, kinds, roles and methods are plain strings (the enums' values), not native enums, so
  adding a state needs no ``ALTER TYPE`` migration.
* A job's plan is split: ``plan_region``, ``plan_start`` and ``plan_end`` are columns, because
  ``claim_due`` and the planner filter on them (index ``(state, plan_start)``); the rest of the
  plan (windows, policy, expected emissions, the forecast it used) is one JSON document.
* A stored series is a header row in ``forecasts`` (zone, provider, kind, signal, issued_at,
  resolution) plus its points in ``forecast_points`` (valid_at, g_per_kwh). The issue's flat
  ``forecasts(zone, provider, kind, issued_at, valid_at, g_per_kwh)`` is the join of the two.
  The split makes "latest series for zone Z as of T" one index probe on
  ``(zone, kind, issued_at)`` instead of a scan over every point ever fetched, and stores the
  header once per series instead of once per point. Both tables are append-only.
* Every datetime column is :class:`UtcDateTime`: aware UTC in, aware UTC out.
"""

from __future__ import annotations

import sqlalchemy as sa

from scheduler.store.types import UtcDateTime

# Stable constraint names, so migrations can drop or alter them on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)

jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    # The spec, as submitted.
    sa.Column("tenant", sa.String(128), nullable=False),
    sa.Column("name", sa.String(256), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("entrypoint", sa.Text, nullable=False),
    sa.Column("home_region", sa.String(64), nullable=False),
    sa.Column("runtime_env", sa.JSON, nullable=False),
    # A deployment's Ray Serve application ({"import_path", "config"}), NULL otherwise; 0008.
    sa.Column("serve", sa.JSON, nullable=True),
    # Whole GPUs, or a deployment's share of one (0.25); migration 0008.
    sa.Column("gpus", sa.Float, nullable=False),
    sa.Column("cpus", sa.Float, nullable=False),
    sa.Column("memory_mb", sa.Integer, nullable=False),
    sa.Column("expected_duration_s", sa.Float, nullable=True),
    sa.Column("deadline", UtcDateTime, nullable=True),
    sa.Column("max_delay_s", sa.Float, nullable=True),
    sa.Column("allowed_regions", sa.JSON, nullable=False),
    sa.Column("interruptible", sa.Boolean, nullable=False),
    sa.Column("priority", sa.Integer, nullable=False),
    sa.Column("max_retries", sa.Integer, nullable=False),
    sa.Column("policy", sa.String(32), nullable=False),
    sa.Column("expected_power_w", sa.Float, nullable=True),
    # Where the job stands.
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("plan_region", sa.String(64), nullable=True),
    sa.Column("plan_start", UtcDateTime, nullable=True),
    sa.Column("plan_end", UtcDateTime, nullable=True),
    sa.Column("plan", sa.JSON, nullable=True),
    sa.Column("region", sa.String(64), nullable=True),
    sa.Column("submission_id", sa.String(128), nullable=True),
    sa.Column("started_at", UtcDateTime, nullable=True),
    sa.Column("finished_at", UtcDateTime, nullable=True),
    sa.Column("exit_code", sa.Integer, nullable=True),
    sa.Column("message", sa.Text, nullable=True),
    # The cycles' bookkeeping (migration 0004). ``quarantine``: why no cycle touches the job any
    # more (None = healthy). ``submit_attempt``/``submit_taken_at``: which attempt's submit to
    # the cluster some replica has taken, and when (a lease). ``dispatched_attempt``/
    # ``dispatched_at``: the attempt whose dispatch was recorded, set once by compare-and-swap.
    sa.Column("quarantine", sa.Text, nullable=True),
    sa.Column("submit_attempt", sa.Integer, nullable=True),
    sa.Column("submit_taken_at", UtcDateTime, nullable=True),
    sa.Column("dispatched_attempt", sa.Integer, nullable=True),
    sa.Column("dispatched_at", UtcDateTime, nullable=True),
    # Jobs of one array or sweep (``greenlight submit --array``, ``POST /v1/jobs/batch``).
    sa.Column("group_id", sa.String(64), nullable=True),
    # [{"job_id": ..., "kind": "afterok" | "afterany"}]: the jobs this one runs after.
    sa.Column("after", sa.JSON, nullable=True),
    # Deployments (migration 0007): the serving copy's endpoint and since when; the endpoint the
    # new copy of a move in flight reported; the move in flight (JSON, see
    # scheduler.domain.deployments); when it last moved; every completed move (JSON list).
    sa.Column("endpoint", sa.String(512), nullable=True),
    sa.Column("endpoint_updated_at", UtcDateTime, nullable=True),
    sa.Column("next_endpoint", sa.String(512), nullable=True),
    sa.Column("relocation", sa.JSON, nullable=True),
    sa.Column("moved_at", UtcDateTime, nullable=True),
    sa.Column("relocations", sa.JSON, nullable=True),
    sa.Column("move_attempts", sa.Integer, nullable=True),  # attempts moves used (not retries)
    # SCI's R (migration 0006): the worker's running total of steps or requests, its unit, and
    # the attempt it belongs to (it only grows within an attempt).
    sa.Column("functional_units", sa.Float, nullable=True),
    sa.Column("functional_unit", sa.String(32), nullable=True),
    sa.Column("functional_units_attempt", sa.Integer, nullable=True),
    sa.Index("ix_jobs_state_plan_start", "state", "plan_start"),
    sa.Index("ix_jobs_tenant_created_at", "tenant", "created_at"),
    sa.Index("ix_jobs_created_at", "created_at"),
    # The plan cycle's incremental read: rows stamped since its last (migration 0012).
    sa.Index("ix_jobs_updated_at", "updated_at"),
    # The list's filters, each ending in its order (newest first, ties by id), so a page
    # (offset or keyset) is an index range scan whatever the table's size (migration 0002).
    sa.Index("ix_jobs_state_created_at_id", "state", "created_at", "id"),
    sa.Index("ix_jobs_tenant_state_created_at_id", "tenant", "state", "created_at", "id"),
    sa.Index("ix_jobs_kind_created_at_id", "kind", "created_at", "id"),
    # Partial (migration 0011): a queued job has no group or finish time, and its insert and
    # plan writes then touch neither index.
    sa.Index(
        "ix_jobs_group_id_created_at_id",
        "group_id",
        "created_at",
        "id",
        postgresql_where=sa.text("group_id IS NOT NULL"),
        sqlite_where=sa.text("group_id IS NOT NULL"),
    ),
    # Retention: finished jobs by when they finished.
    sa.Index(
        "ix_jobs_finished_at",
        "finished_at",
        postgresql_where=sa.text("finished_at IS NOT NULL"),
        sqlite_where=sa.text("finished_at IS NOT NULL"),
    ),
)

job_events = sa.Table(
    "job_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "job_id", sa.String(64), sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("at", UtcDateTime, nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("actor", sa.String(128), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("from_state", sa.String(16), nullable=True),
    sa.Column("to_state", sa.String(16), nullable=True),
    sa.Column("expected_emissions_g", sa.Float, nullable=True),
    sa.Index("ix_job_events_job_id_at", "job_id", "at"),
)

regions = sa.Table(
    "regions",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("grid_zone", sa.String(64), nullable=False),
    sa.Column("provider", sa.String(64), nullable=False),
    sa.Column("gpus", sa.Integer, nullable=False),
    sa.Column("pue", sa.Float, nullable=False),
    sa.Column("ray_address", sa.String(512), nullable=True),
    sa.Column("node_label", sa.String(128), nullable=True),
)

forecasts = sa.Table(
    "forecasts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("zone", sa.String(64), nullable=False),
    sa.Column("provider", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("signal", sa.String(16), nullable=False),
    sa.Column("issued_at", UtcDateTime, nullable=False),
    sa.Column("resolution_s", sa.Integer, nullable=False),
    # When this row was written (database clock): audit only, never used for decisions.
    sa.Column("fetched_at", UtcDateTime, nullable=False, server_default=sa.func.now()),
    sa.Index("ix_forecasts_zone_provider_kind_issued_at", "zone", "provider", "kind", "issued_at"),
    sa.Index("ix_forecasts_issued_at", "issued_at"),
)

forecast_points = sa.Table(
    "forecast_points",
    metadata,
    sa.Column(
        "series_id", sa.Integer, sa.ForeignKey("forecasts.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("valid_at", UtcDateTime, primary_key=True),
    sa.Column("g_per_kwh", sa.Float, nullable=False),
)

energy_reports = sa.Table(
    "energy_reports",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "job_id", sa.String(64), sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("node", sa.String(256), nullable=False),
    sa.Column("device", sa.String(64), nullable=False),
    sa.Column("interval_start", UtcDateTime, nullable=False),
    sa.Column("interval_end", UtcDateTime, nullable=False),
    sa.Column("energy_j", sa.Float, nullable=False),
    sa.Column("method", sa.String(16), nullable=False),
    # The idempotency key of a report: a retried POST inserts nothing.
    sa.UniqueConstraint("job_id", "attempt", "device", "interval_start"),
)

api_tokens = sa.Table(
    "api_tokens",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("tenant", sa.String(128), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("token_hash", sa.String(128), nullable=False, unique=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("name", sa.String(256), nullable=False),
    # A per-job worker token names its job; no foreign key, so a token may be minted first.
    sa.Column("job_id", sa.String(64), nullable=True, index=True),
    sa.Column("attempt", sa.Integer, nullable=True),  # JOB and BOOTSTRAP tokens: which attempt
    sa.Column("expires_at", UtcDateTime, nullable=True),
    sa.Column("revoked", sa.Boolean, nullable=False),
)

# The savings report's hourly rollup (migration 0009, ``scheduler.store.rollup``): the sums of
# finished jobs per hour they started in, so a report over a million jobs reads thousands of
# rows. Hours are whole hours since the epoch (UTC), an integer on every backend.
savings_rollup_jobs = sa.Table(
    "savings_rollup_jobs",
    metadata,
    sa.Column("started_hour", sa.BigInteger, nullable=False),
    sa.Column("tenant", sa.String(128), nullable=False),
    sa.Column("region", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("group_key", sa.String(64), nullable=False),  # '' for no group
    sa.Column("jobs", sa.Integer, nullable=False),
    sa.Column("delay_s", sa.Float, nullable=False),
    sa.Column("gpu_s", sa.Float, nullable=False),
    sa.Column("cpu_s", sa.Float, nullable=False),
    sa.Column("deadline_misses", sa.Integer, nullable=False),
    sa.Column("moved_in_time", sa.Integer, nullable=False),
    sa.Column("moved_in_space", sa.Integer, nullable=False),
    sa.Index("ix_savings_rollup_jobs_started_hour", "started_hour"),
)

savings_rollup_energy = sa.Table(
    "savings_rollup_energy",
    metadata,
    sa.Column("started_hour", sa.BigInteger, nullable=False),
    sa.Column("tenant", sa.String(128), nullable=False),
    sa.Column("region", sa.String(64), nullable=False),
    sa.Column("home_region", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("group_key", sa.String(64), nullable=False),
    # The hour the energy was drawn in, or (baseline) would have been drawn in at home.
    sa.Column("hour", sa.BigInteger, nullable=False),
    sa.Column("baseline", sa.Boolean, nullable=False),
    sa.Column("energy_j", sa.Float, nullable=False),
    sa.Column("estimated_j", sa.Float, nullable=False),
    sa.Index("ix_savings_rollup_energy_started_hour", "started_hour"),
)

# Hours whose jobs or energy changed since they were rolled up: read raw until recomputed.
savings_rollup_dirty = sa.Table(
    "savings_rollup_dirty",
    metadata,
    sa.Column("started_hour", sa.BigInteger, primary_key=True),
    sa.Column("marks", sa.Integer, nullable=False),
)

# One row (id 1): the hours rolled up, [rolled_from, rolled_to), and the planning step the
# moved-in-time counts were made with.
savings_rollup_state = sa.Table(
    "savings_rollup_state",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("rolled_from", sa.BigInteger, nullable=False),
    sa.Column("rolled_to", sa.BigInteger, nullable=False),
    sa.Column("step_s", sa.Float, nullable=False),
)

# The savings report's raw edges (0009): jobs by start time, and those started but not
# finished (running, or the rare one that ended without a finish time). Partial: a pending
# job's insert touches neither.
sa.Index(
    "ix_jobs_started_at",
    jobs.c.started_at,
    postgresql_where=jobs.c.started_at.is_not(None),
    sqlite_where=jobs.c.started_at.is_not(None),
)
sa.Index(
    "ix_jobs_started_unfinished",
    jobs.c.started_at,
    postgresql_where=sa.and_(jobs.c.started_at.is_not(None), jobs.c.finished_at.is_(None)),
    sqlite_where=sa.and_(jobs.c.started_at.is_not(None), jobs.c.finished_at.is_(None)),
)

# What a scheduler process shares with the API processes (migration 0010): the admission
# ledger, cycle health, and wake-up counters (``scheduler.store.shared_state``).
scheduler_state = sa.Table(
    "scheduler_state",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("version", sa.BigInteger, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Column("body", sa.LargeBinary, nullable=True),
)
