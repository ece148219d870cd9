"""How Nexus's log lines look: plain text for people (the default), or one JSON object a line
for a log collector (``nexus serve --log-format json``).

A JSON line holds ``time`` (UTC, to the millisecond), ``level``, ``logger`` and ``message``;
the fields bound to the task or thread that wrote it (:func:`bound`: the server binds each
request's ``request_id`` while it serves it); the fields the line itself carries (a request's
line: ``method``, ``path``, ``route``, ``status``, ``duration_ms``, ``collection``,
``client``); and ``exception``, the traceback, when there is one.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, Literal, get_args

__all__ = [
    "LOG_FORMATS",
    "LOG_FORMAT_ENV",
    "TEXT_FORMAT",
    "JsonFormatter",
    "LogFormat",
    "bound",
    "use_log_format",
]

LogFormat = Literal["text", "json"]
LOG_FORMATS: tuple[LogFormat, ...] = get_args(LogFormat)
LOG_FORMAT_ENV = "NEXUS_LOG_FORMAT"  # what `nexus serve --log-format` reads when not given
TEXT_FORMAT = "%(levelname)s %(name)s: %(message)s"

_bound: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "nexus_log_fields", default=None
)


@contextmanager
def bound(**fields: Any) -> Iterator[None]:
    """Add ``fields`` to every JSON line written in this block by this task or thread (and by
    threads it hands work to with a copy of its context, as Starlette's thread pool does)."""
    token = _bound.set({**(_bound.get() or {}), **fields})
    try:
        yield
    finally:
        _bound.reset(token)


class JsonFormatter(logging.Formatter):
    """A log record as one line of JSON (see the module's description for its keys)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **(_bound.get() or {}),
            **getattr(record, "fields", {}),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def use_log_format(log_format: LogFormat) -> None:
    """Write this process's log lines to stderr in ``log_format``.

    A process that has no log handler yet gets one on stderr. ``json`` turns every handler of
    the root logger to JSON, so each line of the stream parses; ``text`` keeps their format.
    """
    root = logging.getLogger()
    if not root.handlers:
        stderr = logging.StreamHandler(sys.stderr)
        stderr.setFormatter(logging.Formatter(TEXT_FORMAT))
        root.addHandler(stderr)
    if log_format == "json":
        for handler in root.handlers:
            handler.setFormatter(JsonFormatter())
