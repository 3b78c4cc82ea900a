"""What a tool answers: structured content with a text copy, or a refusal.

A refusal is an ``isError`` result whose text names the code, the field and what would be
accepted, and which carries no ``structuredContent``: clients (the MCP Inspector among them)
check any structured content against the tool's output schema, errors included, and a result
shaped for success would hide the message behind schema complaints. The same details are in
``_meta.error`` (``code``, ``message``, ``field``, ``fields``) for a client that reads them.
"""

from __future__ import annotations

from typing import Any

from mcp.types import CallToolResult, TextContent
from pydantic import ValidationError

from tasks.errors import TaskError, TaskNotFound


def result(data: dict, text: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=data)


def tool_error(
    message: str,
    *,
    code: str,
    field: str | None = None,
    fields: list[dict] | None = None,
    text: str | None = None,
    **extra: Any,
) -> CallToolResult:
    """A refusal the agent can act on; the text reads ``field: message (code: code)``."""
    error: dict[str, Any] = {"code": code, "message": message}
    if field:
        error["field"] = field
    if fields:
        error["fields"] = fields
    error.update(extra)
    if text is None:
        text = f"{field}: {message}" if field else message
    return CallToolResult(
        content=[TextContent(type="text", text=f"{text} (code: {code})")],
        is_error=True,
        _meta={"error": error},
    )


def task_error(exc: TaskError, subject: tuple[str, int] | None = None) -> CallToolResult:
    """A domain refusal; "not found" names what was looked for (``("task_id", 7)`` reads
    "Task 7 not found.")."""
    if isinstance(exc, TaskNotFound) or exc.code == "not_found":
        field, value = subject or ("task_id", None)
        noun = field.removesuffix("_id").capitalize()
        name = f"{noun} {value}" if value is not None else f"The {noun.lower()}"
        return tool_error(f"{name} not found.", code="not_found", field=field)
    return tool_error(exc.message, code=exc.code, field=exc.field)


def _field_name(location: tuple) -> str:
    name = ""
    for part in location:
        if isinstance(part, int):
            name += f"[{part}]"
        elif part.isidentifier():  # not a validator's own step, e.g. "function-before[...]"
            name += f".{part}" if name else part
    return name


def validation_error(exc: ValidationError, *, field: str | None = None) -> CallToolResult:
    """Each problem of ``exc`` with the argument it concerns (``field`` when ``exc`` checked
    one argument alone)."""
    fields = []
    # A refused choice's message lists the valid values ("Input should be 'low', ...").
    for problem in exc.errors(include_url=False, include_input=False, include_context=False):
        fields.append(
            {
                "field": _field_name(problem["loc"]) or field,
                "code": problem["type"],
                "message": problem["msg"],
            }
        )
    message = "; ".join(
        f"{item['field']}: {item['message']}" if item["field"] else item["message"]
        for item in fields
    )
    return tool_error(
        message, code="invalid", field=fields[0]["field"], fields=fields, text=message
    )


def with_task_id(task: dict, **extra: Any) -> dict:
    """A task as the tools answer it: its ``id`` again as ``task_id``, then ``extra``."""
    return {"task_id": task["id"], **extra, **task}


def summary(task: dict) -> str:
    box = "[x]" if task["completed"] else "[ ]"
    parts = [f"{box} #{task['id']} {task['title']}", task["priority"]]
    if task["due_date"]:
        parts.append(f"due {task['due_date']}")
    if task["recurrence_pattern"] != "none":
        parts.append(f"repeats {task['recurrence_pattern']}")
    if task["reminder_time"]:
        parts.append(f"reminder {task['reminder_time']}")
    if task["tags"]:
        parts.append("tags " + ", ".join(task["tags"]))
    return " · ".join(parts)


def brief(task: dict, *, status: str, verb: str) -> CallToolResult:
    """The short answer of a tool whose result is the task's id, a status and its title."""
    data = {"task_id": task["id"], "status": status, "title": task["title"]}
    return result(data, f"{verb} task #{task['id']} {task['title']}.")
