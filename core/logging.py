"""JSON log lines carrying request, event, user and task ids, so one change can be followed
across the web process, the relay and every consumer."""

from __future__ import annotations

import contextvars
import json
import logging
from contextlib import contextmanager
from datetime import UTC, datetime

_context: contextvars.ContextVar[dict | None] = contextvars.ContextVar("log_context", default=None)
CONTEXT_KEYS = ("request_id", "event_id", "user_id", "task_id", "consumer")


@contextmanager
def log_context(**values):
    """Attach ids to every log record emitted inside the block."""
    merged = {**(_context.get() or {}), **{k: v for k, v in values.items() if v is not None}}
    token = _context.set(merged)
    try:
        yield
    finally:
        _context.reset(token)


class ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in (_context.get() or {}).items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in CONTEXT_KEYS:
            value = getattr(record, key, None)
            if value is not None:
                line[key] = str(value)
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)
