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


def task_to_dict(task: Task) -> dict:
    return {
        "id": task.pk,
        "title": task.title,
        "description": task.description,
        "completed": task.completed,
        "completed_at": iso(task.completed_at),
        "priority": _PRIORITY_LABELS[task.priority],
        "tags": list(task.tags),
        "due_date": iso(task.due_at),
        "reminder_time": (
            format_offset(task.reminder_offset)
            if task.reminder_offset is not None
            else iso(task.remind_at)
        ),
        "remind_at": iso(task.remind_at),
        "recurrence_pattern": task.recurrence_rule,
        "series_id": str(task.series_id) if task.series_id else None,
        "series_index": task.series_index,
        "timezone": task.timezone,
        "created_at": iso(task.created_at),
        "updated_at": iso(task.updated_at),
        "version": task.version,
    }


# Columns the representation reads; list selectors load only these (the search vector stays
# in the database).
REPRESENTATION_FIELDS = (
    "id",
    "user_id",
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
    "timezone",
    "created_at",
    "updated_at",
    "version",
)
