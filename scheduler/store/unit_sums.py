"""SCI's R in the savings report's SQL sums: the counted jobs' functional units per group key.

The job counts may come from the rollup (``scheduler.store.rollup``) for finished jobs, but a
job's unit count lives on its row and may still grow after the job ended (the runner's final
report arrives within the attempt's grace), so it is summed from the job rows, over only the
rows that have one, and attached to the counts by their key.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import sqlalchemy as sa

from scheduler.domain.savings import JobCount
from scheduler.store.tables import jobs


def unit_sums_query(keys: Sequence[Any], conditions: Sequence[sa.ColumnElement[bool]]) -> Any:
    """Per ``keys``: the sum of the counted jobs' units, how many have one, and the least and
    greatest unit name (equal when all agree: the report needs no more)."""
    return (
        sa.select(
            *keys,
            sa.func.sum(jobs.c.functional_units),
            sa.func.count(jobs.c.functional_units),
            sa.func.min(jobs.c.functional_unit),
            sa.func.max(jobs.c.functional_unit),
        )
        .where(*conditions, jobs.c.functional_units.is_not(None))
        .group_by(*keys)
    )


def attach_units(
    counts: Sequence[JobCount],
    rows: Sequence[Any],
    key_of: Callable[[Any], Hashable],
) -> list[JobCount]:
    """``counts`` with the unit sums of ``rows`` (from :func:`unit_sums_query`) whose
    ``key_of(row)`` equals ``(tenant, region, day, split_key)`` of a count."""
    by_key: dict[Hashable, tuple[float, int, frozenset[str]]] = {}
    for row in rows:
        units, units_jobs, first, last = row[-4:]
        names = frozenset(u for u in (first, last) if u is not None)
        key = key_of(row)
        known = by_key.get(key)
        if known is not None:
            units, units_jobs, names = known[0] + units, known[1] + units_jobs, known[2] | names
        by_key[key] = (float(units or 0.0), int(units_jobs or 0), names)
    out = []
    for c in counts:
        found = by_key.get((c.tenant, c.region, c.day, c.split_key))
        if found is None:
            out.append(c)
        else:
            units, units_jobs, names = found
            out.append(dataclasses.replace(c, units=units, units_jobs=units_jobs, unit_names=names))
    return out
