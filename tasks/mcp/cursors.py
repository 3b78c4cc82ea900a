"""``list_tasks`` cursors: the offset of the next page, signed, and tied to the query and the
user it was made for, so a cursor cannot be forged, edited or replayed against other filters."""

from __future__ import annotations

import hashlib
import json

from django.core import signing

from tasks.errors import TaskValidationError

_SALT = "tasks.mcp.list_tasks.cursor"


def _fingerprint(user_id: str, query: dict) -> str:
    text = json.dumps([user_id, query], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def make_cursor(*, user_id: str, query: dict, offset: int) -> str:
    return signing.dumps({"o": offset, "q": _fingerprint(user_id, query)}, salt=_SALT)


def read_cursor(cursor: str, *, user_id: str, query: dict) -> int:
    """The offset ``cursor`` stands for; a clear refusal when it is not one of ours or was made
    for another query."""
    try:
        data = signing.loads(cursor, salt=_SALT)
    except signing.BadSignature:
        raise TaskValidationError(
            "cursor is not a next_cursor this server gave out; start again without it.",
            field="cursor",
            code="invalid_cursor",
        ) from None
    if not isinstance(data, dict) or data.get("q") != _fingerprint(user_id, query):
        raise TaskValidationError(
            "cursor belongs to a list_tasks call with other filters; send the same filters, "
            "or start again without it.",
            field="cursor",
            code="invalid_cursor",
        )
    offset = data.get("o")
    if not isinstance(offset, int) or offset < 0:
        raise TaskValidationError("cursor is damaged.", field="cursor", code="invalid_cursor")
    return offset
