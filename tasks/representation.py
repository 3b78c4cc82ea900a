"""The one JSON shape of a task: REST responses, MCP results and event snapshots all use it."""

from __future__ import annotations

from datetime import datetime

from tasks.models import Priority, Task
from tasks.validation import format_offset


def iso(value: datetime | None) -> str | None:
    """RFC 3339 in UTC with a ``Z``."""
    if value is None:
        return None
    return value.isoformat().replace("+00:00", "Z")


_PRIORITY_LABELS = {member.value: member.label for member in Priority}


def row_to_dict(row: dict) -> dict:
    """The representation from a row of ``REPRESENTATION_FIELDS`` (as ``.values()`` gives)."""
    offset = row["reminder_offset"]
    series_id = row["series_id"]
    return {
        "id": row["id"],
        "title": row["title"],
        "description": row["description"],
        "completed": row["completed"],
        "completed_at": iso(row["completed_at"]),
        "priority": _PRIORITY_LABELS[row["priority"]],
        "tags": list(row["tags"]),
        "due_date": iso(row["due_at"]),
        "reminder_time": format_offset(offset) if offset is not None else iso(row["remind_at"]),
        "remind_at": iso(row["remind_at"]),
        "recurrence_pattern": row["recurrence_rule"],
        "series_id": str(series_id) if series_id else None,
        "series_index": row["series_index"],
        "repeat_from": row["repeat_from"],
        "skipped_at": iso(row["skipped_at"]),
        "deleted_at": iso(row["deleted_at"]),
        "timezone": row["timezone"],
        "created_at": iso(row["created_at"]),
        "updated_at": iso(row["updated_at"]),
        "version": row["version"],
    }


def task_to_dict(task: Task) -> dict:
    return row_to_dict({name: getattr(task, name) for name in REPRESENTATION_FIELDS})


# Columns the representation reads; list selectors load only these (the search vector stays
# in the database).
REPRESENTATION_FIELDS = (
    "id",
    "title",
    "description",
    "completed",
    "completed_at",
    "priority",
    "tags",
    "due_at",
    "reminder_offset",
    "remind_at",
    "recurrence_rule",
    "series_id",
    "series_anchor",
    "series_index",
    "series_anchor_index",
    "repeat_from",
    "skipped_at",
    "deleted_at",
    "timezone",
    "created_at",
    "updated_at",
    "version",
)
