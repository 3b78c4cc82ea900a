"""The task tools: thin wrappers over ``tasks.services`` and ``tasks.selectors``.

Each runs the same service or selector as the REST view (``tasks.mcp.calls.serve``) and answers
structured content plus a short text. Whether a token may call a tool (its scope, its user) and
whether the arguments are well formed is checked before a tool runs (``tasks.mcp.server``).
"""

from __future__ import annotations

from datetime import datetime, time
from functools import partial
from typing import Annotated
from zoneinfo import ZoneInfo

from mcp.server.mcpserver.tools import Tool
from mcp.types import CallToolResult, ToolAnnotations

from tasks import selectors, services
from tasks.api import throttles
from tasks.api.history import history_entry_to_dict
from tasks.errors import TaskValidationError
from tasks.mcp import request_keys
from tasks.mcp.calls import serve
from tasks.mcp.cursors import make_cursor, read_cursor
from tasks.mcp.results import brief, result, summary, tool_error, with_task_id
from tasks.mcp.schemas import (
    STATUS_SYNONYMS,
    AddTaskResult,
    CompleteTaskResult,
    Cursor,
    DeleteTaskResult,
    Description,
    DueBound,
    DueDate,
    DueDateFilter,
    DueWindow,
    GetTaskResult,
    HistoryLimit,
    Limit,
    ListTasksResult,
    NewTitle,
    Offset,
    Ordering,
    Priority,
    PriorityFilter,
    RecurrencePattern,
    ReminderTime,
    ReopenTaskResult,
    Search,
    SortBy,
    SortOrder,
    Status,
    StopSeries,
    Tags,
    TagsFilter,
    TagsMode,
    TaskHistoryResult,
    TaskId,
    TimeZone,
    Title,
    UpdateTaskResult,
    UserId,
)
from tasks.models import MAX_OFFSET
from tasks.representation import task_to_dict
from tasks.validation import clean_timezone, parse_when

# The REST budgets: a user's REST and MCP calls draw on the same ones.
READ_BUDGET, LIST_BUDGET, WRITE_BUDGET = throttles.READ, throttles.LIST, throttles.WRITE

DEFAULT_SORT_ORDER = {
    "created_at": "desc",
    "priority": "desc",
    "due_date": "asc",
    "title": "asc",
    "status": "asc",
}


def make_tool(
    fn,
    title: str,
    *,
    read_only: bool,
    destructive: bool = False,
    idempotent: bool = False,
) -> Tool:
    """A tool with every behaviour hint stated (clients assume the worst for a missing one):
    none reaches outside this server (``openWorldHint`` false)."""
    tool = Tool.from_function(
        fn,
        title=title,
        annotations=ToolAnnotations(
            title=title,
            read_only_hint=read_only,
            destructive_hint=destructive,
            idempotent_hint=idempotent,
            open_world_hint=False,
        ),
    )
    # Unknown arguments are refused (see TaskToolServer.call_tool), and the schema says so.
    tool.parameters["additionalProperties"] = False
    if not read_only:
        # Taken off the arguments before the tool sees them (TaskToolServer.call_tool).
        tool.parameters["properties"][request_keys.ARGUMENT] = request_keys.SCHEMA
    return tool


# --- writes -------------------------------------------------------------------------------


async def add_task(
    *,
    user_id: UserId = None,
    title: Title,
    description: Description = None,
    priority: Priority = None,
    tags: Tags = None,
    due_date: DueDate = None,
    recurrence_pattern: RecurrencePattern = None,
    reminder_time: ReminderTime = None,
    timezone: TimeZone = None,
) -> Annotated[CallToolResult, AddTaskResult]:
    """Create a task for the user. Returns the new task with its task_id."""

    def work(owner: str) -> dict:
        task = services.task_create(
            user_id=owner,
            title=title,
            description=description,
            priority=priority or "medium",
            tags=tags,
            due_date=due_date,
            reminder_time=reminder_time,
            recurrence_pattern=recurrence_pattern,
            timezone_name=timezone,
        )
        return task_to_dict(task)

    def present(task: dict) -> CallToolResult:
        return result(with_task_id(task, status="created"), f"Created task {summary(task)}")

    return await serve(budget=WRITE_BUDGET, work=work, present=present)


async def complete_task(
    *, user_id: UserId = None, task_id: TaskId
) -> Annotated[CallToolResult, CompleteTaskResult]:
    """Mark a task as done. Completing a completed task changes nothing. Completing a recurring
    task makes its next occurrence."""

    def work(owner: str) -> dict:
        return task_to_dict(services.task_complete(user_id=owner, task_id=task_id))

    present = partial(brief, status="completed", verb="Completed")
    return await serve(budget=WRITE_BUDGET, work=work, present=present, task_id=task_id)


async def reopen_task(
    *, user_id: UserId = None, task_id: TaskId
) -> Annotated[CallToolResult, ReopenTaskResult]:
    """Mark a completed task as not done again. Reopening an open task changes nothing."""

    def work(owner: str) -> dict:
        return task_to_dict(services.task_reopen(user_id=owner, task_id=task_id))

    def present(task: dict) -> CallToolResult:
        return result(with_task_id(task, status="reopened"), f"Reopened task {summary(task)}")

    return await serve(budget=WRITE_BUDGET, work=work, present=present, task_id=task_id)


async def delete_task(
    *, user_id: UserId = None, task_id: TaskId, stop_series: StopSeries = False
) -> Annotated[CallToolResult, DeleteTaskResult]:
    """Delete a task: it goes to the trash (list_trash), where restore_task brings it back
    until it is purged. For a recurring task, stop_series=true also ends the series;
    otherwise its next occurrence still comes when this one would have been completed."""

    def work(owner: str) -> dict:
        return services.task_delete(user_id=owner, task_id=task_id, stop_series=stop_series)

    present = partial(brief, status="deleted", verb="Deleted")
    return await serve(budget=WRITE_BUDGET, work=work, present=present, task_id=task_id)


async def update_task(
    *,
    user_id: UserId = None,
    task_id: TaskId,
    title: NewTitle = None,
    description: Description = None,
    priority: Priority = None,
    tags: Tags = None,
    due_date: DueDate = None,
    recurrence_pattern: RecurrencePattern = None,
    reminder_time: ReminderTime = None,
    timezone: TimeZone = None,
) -> Annotated[CallToolResult, UpdateTaskResult]:
    """Change some of a task's fields; fields left out stay as they are. Returns the names of
    the fields whose value changed."""
    given = {
        "title": title,
        "description": description,
        "priority": priority,
        "tags": tags,
        "due_date": due_date,
        "recurrence_pattern": recurrence_pattern,
        "reminder_time": reminder_time,
        "timezone": timezone,
    }
    changes = {name: value for name, value in given.items() if value is not None}
    if not changes:
        return tool_error(
            "Nothing to update: give at least one of " + ", ".join(given) + ".",
            code="nothing_to_update",
        )

    def work(owner: str) -> tuple[dict, tuple[str, ...]]:
        task, changed = services.task_update(user_id=owner, task_id=task_id, changes=changes)
        return task_to_dict(task), changed

    def present(value: tuple[dict, tuple[str, ...]]) -> CallToolResult:
        task, changed = value
        data = with_task_id(task, status="updated", updated_fields=list(changed))
        if changed:
            text = f"Updated {', '.join(changed)} of task {summary(task)}"
        else:
            text = f"Nothing changed: task {summary(task)}"
        return result(data, text)

    return await serve(budget=WRITE_BUDGET, work=work, present=present, task_id=task_id)


# --- reads --------------------------------------------------------------------------------


async def get_task(
    *, user_id: UserId = None, task_id: TaskId
) -> Annotated[CallToolResult, GetTaskResult]:
    """Read one task with every field."""

    def work(owner: str) -> dict:
        return task_to_dict(selectors.task_get_for_user(user_id=owner, task_id=task_id))

    def present(task: dict) -> CallToolResult:
        return result(with_task_id(task), summary(task))

    return await serve(budget=READ_BUDGET, work=work, present=present, task_id=task_id)


async def task_history(
    *,
    user_id: UserId = None,
    task_id: TaskId,
    limit: HistoryLimit = 50,
    offset: Offset = 0,
) -> Annotated[CallToolResult, TaskHistoryResult]:
    """What happened to a task, oldest first: each event with the fields it changed and their
    previous values. A deleted task keeps its history."""

    def work(owner: str) -> selectors.HistoryPage:
        page = selectors.task_history_for_user(
            user_id=owner, task_id=task_id, limit=limit, offset=offset
        )
        if page.total == 0:
            # As REST: no history yet is an empty list for an existing task, else not found.
            selectors.task_get_for_user(user_id=owner, task_id=task_id)
        return page

    def present(page: selectors.HistoryPage) -> CallToolResult:
        entries = [history_entry_to_dict(entry) for entry in page.entries]
        data = {
            "task_id": task_id,
            "entries": entries,
            "total_count": page.total,
            "limit": page.limit,
            "offset": page.offset,
        }
        lines = [f"History of task #{task_id}: {page.total} event(s)."]
        lines += [
            f"- #{entry['sequence']} {entry['timestamp']} {entry['event_type']}"
            + (f" ({', '.join(entry['changed_fields'])})" if entry["changed_fields"] else "")
            + _by(entry["actor"])
            for entry in entries
        ]
        return result(data, "\n".join(lines))

    return await serve(budget=LIST_BUDGET, work=work, present=present, task_id=task_id)


def _by(actor: dict | None) -> str:
    """Who made a change, as a history line ends: ' by mcp (Claude Code 2.1)'."""
    if not actor:
        return ""
    client = actor.get("client") or {}
    named = " ".join(part for part in (client.get("name"), client.get("version")) if part)
    return f" by {actor['surface']}" + (f" ({named})" if named else "")


def _bound(name: str, value: str | None, tz_name: str) -> datetime | None:
    """A due range bound, read as REST reads ``due_before``/``due_after``."""
    if value is None:
        return None
    parsed = parse_when(value)
    if parsed is None:
        raise TaskValidationError(
            f"{name} must be an ISO 8601 date or date-time, e.g. 2026-12-01T09:00:00Z.",
            field=name,
            code="invalid_datetime",
        )
    if not isinstance(parsed, datetime):
        parsed = datetime.combine(parsed, time())  # a bare date: the start of that day
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=ZoneInfo(tz_name))


def _ordering(
    ordering: list[str] | None, sort_by: str | None, sort_order: str | None, searching: bool
) -> tuple[str, ...]:
    if ordering is not None:
        if sort_by is not None or sort_order is not None:
            raise TaskValidationError(
                "Give ordering, or sort_by/sort_order, not both.",
                field="ordering",
                code="conflict",
            )
        return tuple(dict.fromkeys(ordering))
    if sort_by is None and (sort_order is None or searching):
        return ()
    field = sort_by or "created_at"
    descending = (sort_order or DEFAULT_SORT_ORDER[field]) == "desc"
    return (f"-{field}" if descending else field,)


def _window(due: str | None, due_date_filter: str | None) -> str | None:
    if due is not None and due_date_filter is not None and due != due_date_filter:
        raise TaskValidationError(
            "Give due or due_date_filter, not two different windows.",
            field="due",
            code="conflict",
        )
    return due or due_date_filter


async def list_tasks(
    *,
    user_id: UserId = None,
    status: Status = None,
    search: Search = None,
    priority: PriorityFilter = None,
    tags: TagsFilter = None,
    tags_mode: TagsMode = None,
    due_date_filter: DueDateFilter = None,
    due: DueWindow = None,
    due_before: DueBound = None,
    due_after: DueBound = None,
    sort_by: SortBy = None,
    sort_order: SortOrder = None,
    ordering: Ordering = None,
    limit: Limit = selectors.DEFAULT_LIMIT,
    offset: Offset = 0,
    cursor: Cursor = None,
    timezone: TimeZone = None,
) -> Annotated[CallToolResult, ListTasksResult]:
    """List the user's tasks: search, filter (status, priorities, tags, due windows and
    ranges), sort and page them, as GET /api/tasks/ does. Each task has its task_id;
    total_count says how many match in all, and next_cursor fetches the next page."""
    query_text = (search or "").strip()
    priorities = [priority] if isinstance(priority, str) else list(priority or ())
    query = {
        "status": status,
        "search": query_text,
        "priority": priorities,
        "tags": tags,
        "tags_mode": tags_mode,
        "due": due or due_date_filter,
        "due_before": due_before,
        "due_after": due_after,
        "sort_by": sort_by,
        "sort_order": sort_order,
        "ordering": ordering,
        "timezone": timezone,
    }

    def work(owner: str) -> tuple[selectors.TaskPage, str]:
        start = offset
        if cursor is not None:
            if offset:
                raise TaskValidationError(
                    "Give cursor or offset, not both.", field="cursor", code="conflict"
                )
            start = read_cursor(cursor, user_id=owner, query=query)
        tz_name = clean_timezone(timezone)
        filters = selectors.TaskFilters(
            q=query_text,
            status=STATUS_SYNONYMS.get(status, status) if status else "all",
            priorities=tuple(dict.fromkeys(priorities)),
            tags=tuple(tags or ()),
            tags_mode=tags_mode or "all",
            due_before=_bound("due_before", due_before, tz_name),
            due_after=_bound("due_after", due_after, tz_name),
            due=_window(due, due_date_filter),
            timezone=tz_name,
            ordering=_ordering(ordering, sort_by, sort_order, bool(query_text)),
        )
        page = selectors.task_list_for_user(
            user_id=owner, filters=filters, limit=limit, offset=start
        )
        return page, owner

    def present(value: tuple[selectors.TaskPage, str]) -> CallToolResult:
        page, owner = value
        tasks = page.items
        following = page.offset + len(tasks)
        next_cursor = None
        if tasks and following < page.total and following <= MAX_OFFSET:
            next_cursor = make_cursor(user_id=owner, query=query, offset=following)
        data = {
            "tasks": [with_task_id(task) for task in tasks],
            "total_count": page.total,
            "limit": page.limit,
            "offset": page.offset,
            "next_cursor": next_cursor,
        }
        lines = []
        if page.corrected:
            # As REST: the search says which words it used instead of the ones typed.
            data["corrected"] = page.corrected
            used = ", ".join(f"{word!r} for {typed!r}" for typed, word in page.corrected.items())
            lines.append(f"Nothing matched as typed; searched {used}.")
        if not tasks:
            text = "\n".join([*lines, f"No tasks match (total {page.total})."])
        else:
            first, last = page.offset + 1, following
            lines += [f"Tasks {first}-{last} of {page.total}:"]
            lines += [f"- {summary(task)}" for task in tasks]
            if next_cursor:
                lines.append(f"More: call again with cursor={next_cursor}")
            text = "\n".join(lines)
        return result(data, text)

    return await serve(budget=LIST_BUDGET, work=work, present=present)


TASK_TOOLS = [
    make_tool(add_task, "Add a task", read_only=False),
    make_tool(list_tasks, "List tasks", read_only=True, idempotent=True),
    make_tool(get_task, "Get a task", read_only=True, idempotent=True),
    make_tool(task_history, "Task history", read_only=True, idempotent=True),
    make_tool(complete_task, "Complete a task", read_only=False, idempotent=True),
    make_tool(reopen_task, "Reopen a task", read_only=False, idempotent=True),
    make_tool(update_task, "Update a task", read_only=False, idempotent=True),
    make_tool(delete_task, "Delete a task", read_only=False, destructive=True, idempotent=True),
]
