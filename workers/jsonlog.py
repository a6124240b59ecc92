"""One JSON object per log line on stderr, so the runner's output is machine-readable in the
job's logs next to the user's own output."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

FIELDS_ATTR = "fields"
"""Pass structured data as ``logger.info("msg", extra={"fields": {...}})``."""


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "msg", **fields}``; ``ts`` is ISO-8601 UTC."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, tz=UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, FIELDS_ATTR, None)
        if isinstance(fields, dict):
            line.update(fields)
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def configure_json_logging(level: int | str = logging.INFO, stream: TextIO | None = None) -> None:
    """Send the root logger's records to ``stream`` (stderr) as JSON lines."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # urllib3 logs every retry at DEBUG/WARNING in its own words; ours say it once.
    logging.getLogger("urllib3").setLevel(logging.ERROR)
