"""The SQL store of deployments: recorded endpoints and moves between regions.

Each write reads the job row with ``FOR UPDATE`` (SQLite: the whole transaction holds the write
lock from ``BEGIN IMMEDIATE``) and checks what it expects (state, attempt, the move's phase)
before changing anything, so two replicas advancing one move cannot both win a step, and a
worker's endpoint report never races a switch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, RowMapping

from scheduler.domain import Job, JobEvent, JobKind, JobNotFound, JobState
from scheduler.domain.deployments import (
    EndpointConflict,
    Move,
    MovePhase,
    Relocation,
    serving_attempt,
)
from scheduler.store.deployment_rows import (
    move_document,
    move_from_document,
    relocation_document,
)
from scheduler.store.engine import SqlAdapter, read_transaction, write_transaction
from scheduler.store.rows import event_values, job_from_row
from scheduler.store.tables import job_events, jobs


class SqlDeploymentStore(SqlAdapter):
    """DeploymentStore over SQLAlchemy Core (SQLite or PostgreSQL)."""

    def set_endpoint(self, job_id: str, attempt: int | None, endpoint: str, now: datetime) -> bool:
        """Record the endpoint ``attempt``'s copy reported (``None``: the serving copy's). The
        serving copy's becomes the job's endpoint; the new copy of a move in flight fills the
        move's ``next_endpoint``. Returns True when something changed. Raises JobNotFound, or
        EndpointConflict for an attempt that is neither (stopped, or not a deployment)."""
        with write_transaction(self._engine) as conn:
            row = _locked(conn, job_id)
            if row["kind"] != JobKind.DEPLOYMENT.value:
                raise EndpointConflict(job_id, "only a deployment has an endpoint")
            move = move_from_document(row["relocation"])
            serving = serving_attempt(row["submission_id"], row["attempt"])
            if move is not None and attempt == move.new_attempt:
                if move.phase is MovePhase.STARTING:
                    if row["next_endpoint"] == endpoint:
                        return False
                    _update(conn, job_id, {"next_endpoint": endpoint})
                    return True
                serving = move.new_attempt  # switched: the new copy serves
            if attempt is not None and attempt != serving:
                raise EndpointConflict(job_id, f"attempt {attempt} does not serve this deployment")
            if JobState(row["state"]).terminal:
                raise EndpointConflict(job_id, f"the job is {row['state']}")
            if row["endpoint"] == endpoint:
                return False
            _update(conn, job_id, {"endpoint": endpoint, "endpoint_updated_at": now})
            return True

    def running_deployments(self) -> list[Job]:
        """Deployments running (not moving) and not in quarantine, oldest first."""
        query = (
            sa.select(jobs)
            .where(
                jobs.c.kind == JobKind.DEPLOYMENT.value,
                jobs.c.state == JobState.RUNNING.value,
                jobs.c.quarantine.is_(None),
                jobs.c.relocation.is_(None),
            )
            .order_by(jobs.c.created_at, jobs.c.id)
        )
        with read_transaction(self._engine) as conn:
            return [job_from_row(r) for r in conn.execute(query).mappings().all()]

    def ended_serve_jobs(self, finished_since: datetime) -> list[Job]:
        """Deployments run as Ray Serve applications that finished at or after
        ``finished_since`` (their last energy estimate is written then:
        ``scheduler.service.serve_accounting``). One index range read on ``finished_at``."""
        query = (
            sa.select(jobs)
            .where(
                jobs.c.finished_at >= finished_since,
                jobs.c.kind == JobKind.DEPLOYMENT.value,
                jobs.c.started_at.is_not(None),
                # A plain job's ``serve`` is JSON's null (or SQL NULL where written in bulk).
                sa.func.coalesce(sa.cast(jobs.c.serve, sa.Text), "null") != "null",
            )
            .order_by(jobs.c.finished_at, jobs.c.id)
        )
        with read_transaction(self._engine) as conn:
            found = [job_from_row(r) for r in conn.execute(query).mappings()]
        return [job for job in found if job.spec.serve is not None]

    def moving_jobs(self, finished_since: datetime) -> list[tuple[Job, str | None]]:
        """Jobs with a move in flight, each with the endpoint its new copy reported (None until
        it did): those relocating, and those that finished at or after ``finished_since`` with
        a move left (a cancel mid-move). Two index range reads, whatever the table's size."""
        relocating = sa.select(jobs).where(jobs.c.state == JobState.RELOCATING.value)
        ended = sa.select(jobs).where(
            jobs.c.finished_at >= finished_since, jobs.c.relocation.is_not(None)
        )
        with read_transaction(self._engine) as conn:
            rows = [*conn.execute(relocating).mappings(), *conn.execute(ended).mappings()]
        seen: dict[str, tuple[Job, str | None]] = {}
        for row in rows:
            if row["relocation"] is not None:
                seen[row["id"]] = (job_from_row(row), row["next_endpoint"])
        return [seen[k] for k in sorted(seen)]

    def start_move(self, job_id: str, move: Move, event: JobEvent) -> bool:
        """Running -> relocating with ``move`` in flight, the job's attempt becoming the new
        copy's (its dispatch recorded now: the copy is submitted right after), only if the job
        still runs ``move.old_submission_id`` at the attempt before ``move.new_attempt``, with
        no move in flight. True for the one caller that did."""

        def ok(row: RowMapping) -> bool:
            return (
                row["state"] == JobState.RUNNING.value
                and row["attempt"] == move.new_attempt - 1
                and row["submission_id"] == move.old_submission_id
                and row["relocation"] is None
                and row["quarantine"] is None
            )

        values = {
            "state": JobState.RELOCATING.value,
            "attempt": move.new_attempt,
            "dispatched_attempt": move.new_attempt,
            "dispatched_at": event.at,
            "submit_attempt": move.new_attempt,
            "submit_taken_at": event.at,
            "relocation": move_document(move),
            "next_endpoint": None,
            "move_attempts": sa.func.coalesce(jobs.c.move_attempts, 0) + 1,
            "updated_at": event.at,
        }
        stored = dataclasses.replace(
            event, from_state=JobState.RUNNING, to_state=JobState.RELOCATING
        )
        return self._step(job_id, ok, values, [stored])

    def save_move(self, job_id: str, before: Move, after: Move, events: Sequence[JobEvent]) -> bool:
        """Replace the move in flight ``before`` (same copy, same phase) with ``after``; on the
        switch (``after`` draining, ``before`` starting) the job's endpoint, region and
        submission id become the new copy's. True when stored."""
        switch = before.phase is MovePhase.STARTING and after.phase is MovePhase.DRAINING

        def ok(row: RowMapping) -> bool:
            current = move_from_document(row["relocation"])
            return (
                current is not None
                and current.new_submission_id == before.new_submission_id
                and current.phase is before.phase
                and (not switch or row["next_endpoint"] is not None)
            )

        values: dict[str, Any] = {"relocation": move_document(after)}
        if switch:
            at = after.switched_at
            values.update(
                region=after.to_region,
                submission_id=after.new_submission_id,
                endpoint=jobs.c.next_endpoint,
                endpoint_updated_at=at,
                next_endpoint=None,
                moved_at=at,
                updated_at=at,
            )
        return self._step(job_id, ok, values, events)

    def end_move(
        self,
        job_id: str,
        move: Move,
        events: Sequence[JobEvent],
        *,
        now: datetime,
        relocation: Relocation | None,
    ) -> bool:
        """Clear the move in flight ``move``: completed (``relocation`` appended to the job's
        history) or rolled back (None). A job still relocating runs again; ``moved_at`` becomes
        ``now`` either way, so the minimum stay also spaces out failed tries. The state event
        (relocating -> running) is added after ``events``. True when stored."""

        def ok(row: RowMapping) -> bool:
            current = move_from_document(row["relocation"])
            return current is not None and current.new_submission_id == move.new_submission_id

        def values(row: RowMapping) -> tuple[dict[str, Any], list[JobEvent]]:
            # sa.null(): a JSON column stores None as the JSON text 'null', not SQL NULL.
            out: dict[str, Any] = {"relocation": sa.null(), "next_endpoint": None, "moved_at": now}
            extra = list(events)
            if relocation is not None:
                out["relocations"] = [*(row["relocations"] or []), relocation_document(relocation)]
            if row["state"] == JobState.RELOCATING.value:
                out.update(state=JobState.RUNNING.value, updated_at=now)
                extra.append(
                    JobEvent(
                        job_id=job_id,
                        at=now,
                        kind="state",
                        actor="scheduler",
                        reason="moved" if relocation is not None else "move rolled back",
                        from_state=JobState.RELOCATING,
                        to_state=JobState.RUNNING,
                    )
                )
            return out, extra

        return self._step(job_id, ok, values, ())

    def _step(
        self,
        job_id: str,
        ok: Callable[[RowMapping], bool],
        values: dict[str, Any] | Callable[[RowMapping], tuple[dict[str, Any], list[JobEvent]]],
        events: Sequence[JobEvent],
    ) -> bool:
        with write_transaction(self._engine) as conn:
            row = _locked(conn, job_id)
            if not ok(row):
                return False
            changes, extra = values(row) if callable(values) else (values, list(events))
            _update(conn, job_id, changes)
            for event in extra:
                conn.execute(sa.insert(job_events).values(event_values(event)))
        return True


def _locked(conn: Connection, job_id: str) -> RowMapping:
    row = (
        conn.execute(sa.select(jobs).where(jobs.c.id == job_id).with_for_update())
        .mappings()
        .first()
    )
    if row is None:
        raise JobNotFound(job_id)
    return row


def _update(conn: Connection, job_id: str, values: dict[str, Any]) -> None:
    conn.execute(sa.update(jobs).where(jobs.c.id == job_id).values(values))
