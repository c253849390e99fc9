"""Structured JSON logs with a request id, and nothing personal in them.

One line per record: ``ts``, ``level``, ``logger``, ``msg``, ``request_id`` and a short whitelist
of extra fields (``org_id``, ``actor``, ``method``, ``route``, ``status``, ``duration_ms``...).
What is never logged: request or response bodies, query strings, raw paths (they carry external
ids), client names, addresses or notes. Exceptions are logged as their type and stack frames;
the *message* only of the service's own exceptions (``app.*``: written to name ids, never
client data), never of a library's, because database errors quote the row values they failed
on. An exception with ``violations`` (a failed plan validation) logs them (kinds and ids).
"""

from __future__ import annotations

import contextvars
import datetime as dt
import json
import logging
import traceback
from typing import Any

#: The id of the request being served (set by :class:`app.api.middleware.RequestContext`).
request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "request_id", default=None
)

#: Extra attributes a record may carry into the JSON line; anything else is ignored.
EXTRA_FIELDS = (
    "org_id",
    "actor",
    "method",
    "route",
    "status",
    "duration_ms",
    "job_id",
    "plan_id",
    "kind",
    "count",
    "violations",
)

#: Longest exception message kept in a log line.
MAX_MESSAGE = 2000

_HANDLER_NAME = "homecare-json"


def _frames(exc: BaseException) -> list[str]:
    return [
        f"{frame.filename}:{frame.lineno} in {frame.name}"
        for frame in traceback.extract_tb(exc.__traceback__)
    ]


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        """The JSON line of ``record``."""
        when = dt.datetime.fromtimestamp(record.created, dt.UTC)
        doc: dict[str, Any] = {
            "ts": when.isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None) or request_id_var.get()
        if request_id:
            doc["request_id"] = request_id
        for name in EXTRA_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                doc[name] = value
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            module = type(exc).__module__
            doc["exc_type"] = f"{module}.{type(exc).__qualname__}"
            if module == "app" or module.startswith("app."):
                doc["exc_message"] = str(exc)[:MAX_MESSAGE]
                violations = getattr(exc, "violations", None)
                if violations and "violations" not in doc:
                    doc["violations"] = violations
            doc["stack"] = _frames(exc)
        return json.dumps(doc, default=str, ensure_ascii=False)


def configure_logging(level: str = "INFO") -> None:
    """Send every logger's records to stderr as JSON lines (idempotent).

    uvicorn's own loggers propagate here too (serve passes ``log_config=None`` and turns its
    access log off: it would print raw paths and query strings).
    """
    root = logging.getLogger()
    root.setLevel(level.upper())
    if any(h.get_name() == _HANDLER_NAME for h in root.handlers):
        return
    handler = logging.StreamHandler()
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(JsonFormatter())
    root.addHandler(handler)
    # SQL echo would print statement parameters, i.e. health data.
    logging.getLogger("sqlalchemy.engine").setLevel(logging.WARNING)
