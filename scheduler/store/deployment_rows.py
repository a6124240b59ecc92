"""JSON documents of a deployment's move in flight and its completed moves (``jobs.relocation``
and ``jobs.relocations``, migration 0007). Rows never leave the store package."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from scheduler.domain.deployments import Move, MovePhase, Relocation

_MOVE_TIMES = ("started_at", "health_deadline", "switched_at", "drain_until")
_RELOCATION_TIMES = ("started_at", "switched_at", "finished_at")


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat()


def _time(value: Any) -> datetime | None:
    return None if value is None else datetime.fromisoformat(str(value))


def move_document(move: Move | None) -> dict[str, Any] | None:
    if move is None:
        return None
    out: dict[str, Any] = {
        name: getattr(move, name) for name in Move.__dataclass_fields__ if name not in _MOVE_TIMES
    }
    out["phase"] = move.phase.value
    out.update({name: _iso(getattr(move, name)) for name in _MOVE_TIMES})
    return out


def move_from_document(document: Mapping[str, Any] | None) -> Move | None:
    if not document:
        return None
    values = dict(document)
    values["phase"] = MovePhase(values["phase"])
    for name in _MOVE_TIMES:
        values[name] = _time(values.get(name))
    return Move(**{k: v for k, v in values.items() if k in Move.__dataclass_fields__})


def relocation_document(relocation: Relocation) -> dict[str, Any]:
    out: dict[str, Any] = {
        name: getattr(relocation, name)
        for name in Relocation.__dataclass_fields__
        if name not in _RELOCATION_TIMES
    }
    out.update({name: _iso(getattr(relocation, name)) for name in _RELOCATION_TIMES})
    return out


def relocations_from_documents(
    documents: Sequence[Mapping[str, Any]] | None,
) -> tuple[Relocation, ...]:
    out = []
    for document in documents or ():
        values = dict(document)
        for name in _RELOCATION_TIMES:
            values[name] = _time(values.get(name))
        out.append(
            Relocation(**{k: v for k, v in values.items() if k in Relocation.__dataclass_fields__})
        )
    return tuple(out)
