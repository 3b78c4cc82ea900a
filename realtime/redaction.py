"""Keep tokens out of log lines.

uvicorn logs every WebSocket handshake (``"WebSocket /ws/tasks/?token=..." [accepted]``) on the
``uvicorn.error`` logger even with the access log off; a token given in the query string would
end up in the logs. This filter rewrites such values before any handler sees the record.
"""

from __future__ import annotations

import logging
import re

_SECRET_PARAMS = re.compile(r"((?:^|[?&;])(?:token|access_token|jwt)=)[^&\s\"']*", re.IGNORECASE)
REDACTED = "[redacted]"


def redact(text: str) -> str:
    return _SECRET_PARAMS.sub(lambda match: match.group(1) + REDACTED, text)


class RedactTokensFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and "=" in record.msg:
            record.msg = redact(record.msg)
        if record.args:
            if isinstance(record.args, tuple):
                record.args = tuple(
                    redact(arg) if isinstance(arg, str) and "=" in arg else arg
                    for arg in record.args
                )
            elif isinstance(record.args, dict):
                record.args = {
                    key: redact(value) if isinstance(value, str) and "=" in value else value
                    for key, value in record.args.items()
                }
        return True


_LOGGERS = ("uvicorn.error", "uvicorn.access", "uvicorn", "django.channels.server")


def install() -> None:
    """Attach the filter to the loggers that print request paths (idempotent)."""
    for name in _LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(existing, RedactTokensFilter) for existing in logger.filters):
            logger.addFilter(RedactTokensFilter())
