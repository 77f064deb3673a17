"""Structured logs: ``text`` for people, ``json`` (one object per line) for machines.

Library code logs with ``extra={"fields": {...}}``; both formats show the fields.
"""

from __future__ import annotations

import datetime
import json
import logging
from typing import IO, Literal

__all__ = ["JsonFormatter", "TextFormatter", "configure"]


def _fields(record: logging.LogRecord) -> dict[str, object]:
    fields = getattr(record, "fields", None)
    return dict(fields) if isinstance(fields, dict) else {}


def _ts(record: logging.LogRecord) -> str:
    return datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(
        timespec="milliseconds"
    )


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``ts``, ``level``, ``logger``, ``msg``, then the fields."""

    def format(self, record: logging.LogRecord) -> str:
        obj: dict[str, object] = {
            "ts": _ts(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in _fields(record).items():
            obj.setdefault(key, value)
        if record.exc_info:
            obj["exc"] = self.formatException(record.exc_info)
        return json.dumps(obj, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """``TS LEVEL logger: msg key=value ...``"""

    def format(self, record: logging.LogRecord) -> str:
        extra = " ".join(f"{k}={json.dumps(v, default=str)}" for k, v in _fields(record).items())
        line = f"{_ts(record)} {record.levelname:<7} {record.name}: {record.getMessage()}"
        if extra:
            line += " " + extra
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure(
    fmt: Literal["text", "json"] = "text", level: int = logging.INFO, stream: IO[str] | None = None
) -> logging.Handler:
    """Send the ``sekisho`` loggers to ``stream`` (stderr) in ``fmt``; return the handler."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger("sekisho")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
    return handler
