"""The worker's log: one JSON object per line on stderr, so the runner's output is
machine-readable in the job's logs next to the user's own output.

Not the standard ``logging`` package: the runner starts before every job's command, and
importing ``logging`` (with the ``traceback``, ``string`` and ``weakref`` it pulls in) was a
tenth of its start-up. Worker modules take a :class:`JsonLogger` from :func:`get_logger`, with
``logging.Logger``'s calls (``logger.info("sent %d", n, extra={"fields": {...}})``).

Where they go depends on the process: once :func:`configure_json_logging` has run (the
runner's ``main``), records are written as JSON lines; until then (a library use inside
another program, a test) they are handed to the standard ``logging`` under the same logger
name, so the host's handlers and levels see them.
"""

from __future__ import annotations

import contextlib
import json
import sys
import threading
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from collections.abc import Mapping

FIELDS_ATTR = "fields"
"""Pass structured data as ``logger.info("msg", extra={"fields": {...}})``."""

LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}


class _Sink:
    """Where records go: None until configured (then the standard ``logging``)."""

    level = LEVELS["info"]
    stream: TextIO | None = None
    configured = False
    lock = threading.Lock()


def configure_json_logging(level: int | str = "INFO", stream: TextIO | None = None) -> None:
    """Write every worker record at ``level`` or above to ``stream`` (default: stderr at the
    time of writing) as JSON lines. An unknown level name means INFO."""
    _Sink.level = level if isinstance(level, int) else LEVELS.get(level.lower(), LEVELS["info"])
    _Sink.stream = stream
    _Sink.configured = True


def use_standard_logging() -> None:
    """Hand records to the standard ``logging`` again (as before any configuration)."""
    _Sink.configured = False
    _Sink.stream = None


class JsonLogger:
    """``logging.Logger``'s record calls for one named logger."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def debug(self, msg: str, *args: object, extra: Mapping[str, Any] | None = None) -> None:
        self._log(LEVELS["debug"], msg, args, extra)

    def info(self, msg: str, *args: object, extra: Mapping[str, Any] | None = None) -> None:
        self._log(LEVELS["info"], msg, args, extra)

    def warning(self, msg: str, *args: object, extra: Mapping[str, Any] | None = None) -> None:
        self._log(LEVELS["warning"], msg, args, extra)

    def error(self, msg: str, *args: object, extra: Mapping[str, Any] | None = None) -> None:
        self._log(LEVELS["error"], msg, args, extra)

    def exception(self, msg: str, *args: object, extra: Mapping[str, Any] | None = None) -> None:
        """An error with the exception being handled, as ``logging`` does."""
        self._log(LEVELS["error"], msg, args, extra, with_exc=True)

    def _log(
        self,
        level: int,
        msg: str,
        args: tuple[object, ...],
        extra: Mapping[str, Any] | None,
        *,
        with_exc: bool = False,
    ) -> None:
        if not _Sink.configured:
            _to_standard_logging(self.name, level, msg, args, extra, with_exc)
            return
        if level < _Sink.level:
            return
        line: dict[str, Any] = {
            "ts": datetime.now(UTC).isoformat(),
            "level": _name_of(level),
            "logger": self.name,
            "msg": format_message(msg, args),
        }
        fields = (extra or {}).get(FIELDS_ATTR)
        if isinstance(fields, dict):
            line.update(fields)
        if with_exc and sys.exc_info()[0] is not None:
            import traceback  # only when there is one to show

            line["exc"] = traceback.format_exc().rstrip("\n")
        text = json.dumps(line, default=str) + "\n"
        # One line per write whichever thread logs; a closed stderr must not fail the job.
        with _Sink.lock, contextlib.suppress(OSError, ValueError):
            stream = _Sink.stream or sys.stderr
            stream.write(text)
            stream.flush()


def get_logger(name: str) -> JsonLogger:
    return JsonLogger(name)


def format_message(msg: str, args: tuple[object, ...]) -> str:
    """``msg % args`` as ``logging`` formats it; a mismatch keeps the text rather than
    raising inside a log call."""
    if not args:
        return msg
    try:
        return msg % args
    except (TypeError, ValueError):
        return f"{msg} {args!r}"


def _name_of(level: int) -> str:
    return next((n for n, v in reversed(LEVELS.items()) if level >= v), "debug")


def _to_standard_logging(
    name: str,
    level: int,
    msg: str,
    args: tuple[object, ...],
    extra: Mapping[str, Any] | None,
    with_exc: bool,
) -> None:
    import logging

    logging.getLogger(name).log(
        level, msg, *args, extra=dict(extra) if extra else None, exc_info=with_exc or None
    )
