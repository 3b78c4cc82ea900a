"""The one JSON shape of a task: REST responses, MCP results and event snapshots all use it.

It is written two ways that give the same JSON: ``row_to_dict`` from Python values (a task
just written, an event's snapshot), and ``RepresentationJson`` for reads of many tasks, where
PostgreSQL writes the whole JSON text (loading every timestamp into a ``datetime`` and
formatting it back cost several times the query). ``tasks/tests/test_representation_json.py``
holds the two equal.
"""

from __future__ import annotations

import re
from datetime import datetime
from functools import cache

from django.db.models import Func, TextField

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


def _utc_text(column: str) -> str:
    """A timestamp as ``iso`` writes it, in JSON: RFC 3339 in UTC with a ``Z``, microseconds
    unless they are zero; ``null`` for none."""
    return (
        f"""COALESCE('"' || replace(to_char(t.{column} AT TIME ZONE 'UTC', """
        """'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), '.000000Z', 'Z') || '"', 'null')"""
    )


def _json_text(column: str) -> str:
    return f"COALESCE(to_json(t.{column})::text, 'null')"


# A reminder offset as ``format_offset`` writes it (``30m``, ``2h``, ``1d``, ``1w``).
_SECONDS = "trunc(extract(epoch FROM t.reminder_offset))::bigint"
_OFFSET_TEXT = (
    f"CASE WHEN {_SECONDS} = 0 THEN '0m'"
    f" WHEN mod({_SECONDS}, 604800) = 0 THEN ({_SECONDS} / 604800) || 'w'"
    f" WHEN mod({_SECONDS}, 86400) = 0 THEN ({_SECONDS} / 86400) || 'd'"
    f" WHEN mod({_SECONDS}, 3600) = 0 THEN ({_SECONDS} / 3600) || 'h'"
    f" ELSE floor({_SECONDS} / 60.0)::bigint || 'm' END"
)
_PRIORITY_TEXT = (
    "CASE t.priority "
    + " ".join(f"""WHEN {member.value} THEN '"{member.label}"'""" for member in Priority)
    + " END"
)
# Each key of the representation, in its order, and the SQL that writes its value as JSON the
# way the API's renderer (orjson) writes ``row_to_dict``'s: compact, UTF-8, the same escapes.
_JSON_VALUES = {
    "id": "t.id::text",
    "title": _json_text("title"),
    "description": _json_text("description"),
    "completed": "CASE WHEN t.completed THEN 'true' ELSE 'false' END",
    "completed_at": _utc_text("completed_at"),
    "priority": _PRIORITY_TEXT,
    # jsonb's own text puts a space after each comma; array_to_json writes none.
    "tags": "array_to_json(ARRAY(SELECT jsonb_array_elements_text(t.tags)))::text",
    "due_date": _utc_text("due_at"),
    "reminder_time": (
        f"""CASE WHEN t.reminder_offset IS NULL THEN {_utc_text("remind_at")} """
        f"""ELSE '"' || {_OFFSET_TEXT} || '"' END"""
    ),
    "remind_at": _utc_text("remind_at"),
    "recurrence_pattern": _json_text("recurrence_rule"),
    "series_id": """COALESCE('"' || t.series_id::text || '"', 'null')""",
    "series_index": "t.series_index::text",
    "repeat_from": _json_text("repeat_from"),
    "skipped_at": _utc_text("skipped_at"),
    "deleted_at": _utc_text("deleted_at"),
    "timezone": _json_text("timezone"),
    "created_at": _utc_text("created_at"),
    "updated_at": _utc_text("updated_at"),
    "version": "t.version::text",
}
_JSON_SQL = (
    "'{' || "
    + " || ',' || ".join(f"""'"{key}":' || {value}""" for key, value in _JSON_VALUES.items())
    + " || '}'"
)


class RepresentationJson(Func):
    """The representation of the query's task as JSON text, written by PostgreSQL: for reads
    of many tasks, where loading every timestamp into a ``datetime`` and formatting it back
    cost several times the query. ``tasks/tests/test_representation_json.py`` holds it equal,
    byte for byte, to ``row_to_dict`` rendered by the API.

    ``alias`` is how the query names the task table (the table's own name in a query the ORM
    builds on ``Task``)."""

    output_field = TextField()

    def __init__(self, alias: str = Task._meta.db_table):
        super().__init__()
        self.alias = alias

    def as_sql(self, compiler, connection, **extra):
        return _json_sql(connection.ops.quote_name(self.alias)), ()


@cache
def _json_sql(table: str) -> str:
    return re.sub(r"\bt\.", f"{table}.", _JSON_SQL)
