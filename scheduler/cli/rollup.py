"""``greenlight db rollup``: bring the savings report's hourly rollup up to date, or rebuild it.

The report keeps the rollup current by itself (each report recomputes the hours changed since
the last); this command is for operators: after a bulk import that bypassed the store, after
changing ``step_s``, or to take the first build's cost out of the first report.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from scheduler.cli.context import cli_context
from scheduler.cli.render import console


def db_rollup(
    ctx: typer.Context,
    rebuild: Annotated[
        bool, typer.Option("--rebuild", help="Recompute every hour from the raw rows.")
    ] = False,
) -> None:
    """Update the savings report's hourly rollup (the changed hours), or rebuild all of it."""
    from scheduler.bootstrap import build_store

    settings = cli_context(ctx).settings()
    store = build_store(settings)
    try:
        now = datetime.now(UTC)
        step_s = float(settings.step_s)
        if rebuild:
            done = store.rebuild_savings_rollup(now, step_s)
        else:
            done = store.refresh_savings_rollup(now, step_s)
    finally:
        store.close()
    what = "rebuilt" if done.rebuilt else "updated"
    console().print(
        f"savings rollup {what}: {done.new_hours} new hours, {done.dirty_hours} changed hours"
    )
