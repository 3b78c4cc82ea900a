"""The MCP tools: thin wrappers over ``tasks.services`` and ``tasks.selectors``.

Each tool checks that an explicit ``user_id`` is the token's subject, spends one call of the
caller's REST budget, runs the same service or selector as the REST view in a sync thread (with
the connection handling of a Django request), and answers structured content plus a short text.
Refusals (validation, not found, rate limit, wrong user) are tool errors naming the field;
anything unexpected is logged and answered as a generic tool error, never a traceback.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from functools import partial
from importlib import metadata
from typing import Annotated, Any, TypeVar

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections, connections
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from mcp.server.mcpserver.tools import Tool
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import ValidationError

from core.auth import TokenUser
from tasks import selectors, services
from tasks.errors import TaskError, TaskNotFound
from tasks.mcp.auth import RESOURCE_PATH, current_user
from tasks.mcp.ratelimit import RateLimited, consume
from tasks.mcp.schemas import (
    STATUS_SYNONYMS,
    AddTaskResult,
    CompleteTaskResult,
    DeleteTaskResult,
    Description,
    DueDate,
    DueDateFilter,
    Limit,
    ListTasksResult,
    NewTitle,
    Offset,
    Priority,
    PriorityFilter,
    RecurrencePattern,
    ReminderTime,
    Search,
    SortBy,
    SortOrder,
    Status,
    Tags,
    TagsFilter,
    TaskId,
    TimeZone,
    Title,
    UpdateTaskResult,
    UserId,
)
from tasks.representation import task_to_dict
from tasks.validation import clean_timezone

T = TypeVar("T")

INSTRUCTIONS = (
    "Manage the signed-in user's tasks. add_task creates one; list_tasks finds them (search, "
    "filters, sort, paging) and gives each task's task_id; update_task, complete_task and "
    "delete_task take that task_id. The bearer token decides whose tasks these are: user_id "
    "may be left out. Times are ISO 8601."
)

DEFAULT_SORT_ORDER = {
    "created_at": "desc",
    "priority": "desc",
    "due_date": "asc",
    "title": "asc",
    "status": "asc",
}


# --- results ------------------------------------------------------------------------------


def _result(data: dict, text: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=data)


def tool_error(
    message: str, *, code: str, field: str | None = None, **extra: Any
) -> CallToolResult:
    """A refusal the agent can act on: ``isError`` with the field named in the text."""
    error: dict[str, Any] = {"code": code, "message": message}
    if field:
        error["field"] = field
    error.update(extra)
    text = f"{field}: {message}" if field else message
    return CallToolResult(
        content=[TextContent(type="text", text=text)],
        structured_content={"error": error},
        is_error=True,
    )


def _task_error(exc: TaskError, task_id: int | None) -> CallToolResult:
    if isinstance(exc, TaskNotFound):
        name = f"Task {task_id}" if task_id is not None else "The task"
        return tool_error(f"{name} not found.", code=exc.code, field="task_id")
    return tool_error(exc.message, code=exc.code, field=exc.field)


def _validation_error(exc: ValidationError) -> CallToolResult:
    fields = []
    for problem in exc.errors(include_url=False, include_input=False, include_context=False):
        name = ""
        for part in problem["loc"]:
            name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
        fields.append({"field": name or None, "code": problem["type"], "message": problem["msg"]})
    first = fields[0]
    message = "; ".join(
        f"{item['field']}: {item['message']}" if item["field"] else item["message"]
        for item in fields
    )
    return CallToolResult(
        content=[TextContent(type="text", text=message)],
        structured_content={
            "error": {
                "code": "invalid",
                "message": message,
                "field": first["field"],
                "fields": fields,
            }
        },
        is_error=True,
    )


def _summary(task: dict) -> str:
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


def _brief(task: dict, *, status: str, verb: str) -> CallToolResult:
    """The short answer of a tool whose result is the task's id, a status and its title."""
    data = {"task_id": task["id"], "status": status, "title": task["title"]}
    return _result(data, f"{verb} task #{task['id']} {task['title']}.")


# --- running a call -----------------------------------------------------------------------

# The database threads of each running event loop (one pool per served ASGI app).
_executors: dict[asyncio.AbstractEventLoop, ThreadPoolExecutor] = {}


@contextmanager
def database_threads(size: int):
    """Run the tools' database work on ``size`` threads that keep their connections (as the
    project's WSGI threads do, see ``todo_project/asgi.py``), and close those connections when
    the app stops. Without it (``manage.py runserver``), the work runs in the request's thread."""
    loop = asyncio.get_running_loop()
    executor = ThreadPoolExecutor(max_workers=size, thread_name_prefix="mcp-db")
    _executors[loop] = executor
    try:
        yield executor
    finally:
        _executors.pop(loop, None)
        # One job per thread (the barrier keeps each on its own thread) closes its connection.
        barrier = threading.Barrier(size)

        def close_connection() -> None:
            connections.close_all()
            with suppress(threading.BrokenBarrierError):
                barrier.wait(timeout=10)

        for _ in range(size):
            executor.submit(close_connection)
        executor.shutdown(wait=True)


def _handle(budget: str, user: TokenUser, work: Callable[[str], T]) -> T:
    """One call is handled like one Django request: unusable or expired connections are closed
    before and after (``CONN_MAX_AGE``, health checks), the rest are kept for the next call."""
    close_old_connections()
    try:
        consume(budget, user)
        return work(user.id)
    finally:
        close_old_connections()


async def _in_database_thread(budget: str, user: TokenUser, work: Callable[[str], T]) -> T:
    executor = _executors.get(asyncio.get_running_loop())
    if executor is None:
        return await sync_to_async(_handle, thread_sensitive=True)(budget, user, work)
    return await sync_to_async(_handle, thread_sensitive=False, executor=executor)(
        budget, user, work
    )


async def _serve(
    *,
    budget: str,
    user_id: str | None,
    work: Callable[[str], T],
    present: Callable[[T], CallToolResult],
    task_id: int | None = None,
) -> CallToolResult:
    user = current_user()
    if user_id not in (None, "") and user_id != user.id:
        return tool_error(
            "user_id does not match the signed-in user; leave it out or send your own.",
            code="forbidden",
            field="user_id",
        )
    try:
        value = await _in_database_thread(budget, user, work)
    except RateLimited as exc:
        return tool_error(str(exc), code="rate_limited", retry_after=exc.retry_after)
    except TaskError as exc:
        return _task_error(exc, task_id)
    return present(value)


# --- tools --------------------------------------------------------------------------------


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
        data = {"task_id": task["id"], "status": "created", **task}
        return _result(data, f"Created task {_summary(task)}")

    return await _serve(budget="task_write", user_id=user_id, work=work, present=present)


async def list_tasks(
    *,
    user_id: UserId = None,
    status: Status = None,
    search: Search = None,
    priority: PriorityFilter = None,
    tags: TagsFilter = None,
    due_date_filter: DueDateFilter = None,
    sort_by: SortBy = None,
    sort_order: SortOrder = None,
    limit: Limit = selectors.DEFAULT_LIMIT,
    offset: Offset = 0,
    timezone: TimeZone = None,
) -> Annotated[CallToolResult, ListTasksResult]:
    """List the user's tasks: search, filter, sort and page them. Each task has its task_id,
    and total_count says how many match in all."""
    query = (search or "").strip()
    ordering: tuple[str, ...] = ()
    if sort_by is not None or (sort_order is not None and not query):
        field = sort_by or "created_at"
        descending = (sort_order or DEFAULT_SORT_ORDER[field]) == "desc"
        ordering = (f"-{field}" if descending else field,)

    def work(owner: str) -> selectors.TaskPage:
        filters = selectors.TaskFilters(
            q=query,
            status=STATUS_SYNONYMS.get(status, status) if status else "all",
            priorities=(priority,) if priority else (),
            tags=tuple(tags or ()),
            due=due_date_filter,
            timezone=clean_timezone(timezone),
            ordering=ordering,
        )
        return selectors.task_list_for_user(
            user_id=owner, filters=filters, limit=limit, offset=offset
        )

    def present(page: selectors.TaskPage) -> CallToolResult:
        tasks = page.items
        data = {
            "tasks": [{"task_id": task["id"], **task} for task in tasks],
            "total_count": page.total,
            "limit": page.limit,
            "offset": page.offset,
        }
        if not tasks:
            text = f"No tasks match (total {page.total})."
        else:
            first, last = page.offset + 1, page.offset + len(tasks)
            text = "\n".join(
                [f"Tasks {first}-{last} of {page.total}:", *(f"- {_summary(t)}" for t in tasks)]
            )
        return _result(data, text)

    return await _serve(budget="task_list", user_id=user_id, work=work, present=present)


async def complete_task(
    *, user_id: UserId = None, task_id: TaskId
) -> Annotated[CallToolResult, CompleteTaskResult]:
    """Mark a task as done. Completing a completed task changes nothing. Completing a recurring
    task makes its next occurrence."""

    def work(owner: str) -> dict:
        return task_to_dict(services.task_complete(user_id=owner, task_id=task_id))

    present = partial(_brief, status="completed", verb="Completed")
    return await _serve(
        budget="task_write", user_id=user_id, work=work, present=present, task_id=task_id
    )


async def delete_task(
    *, user_id: UserId = None, task_id: TaskId
) -> Annotated[CallToolResult, DeleteTaskResult]:
    """Delete a task for good."""

    def work(owner: str) -> dict:
        return services.task_delete(user_id=owner, task_id=task_id)

    present = partial(_brief, status="deleted", verb="Deleted")
    return await _serve(
        budget="task_write", user_id=user_id, work=work, present=present, task_id=task_id
    )


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
        data = {
            "task_id": task["id"],
            "status": "updated",
            "updated_fields": list(changed),
            **task,
        }
        if changed:
            text = f"Updated {', '.join(changed)} of task {_summary(task)}"
        else:
            text = f"Nothing changed: task {_summary(task)}"
        return _result(data, text)

    return await _serve(
        budget="task_write", user_id=user_id, work=work, present=present, task_id=task_id
    )


def _tool(fn, title: str, **hints: bool) -> Tool:
    tool = Tool.from_function(
        fn, title=title, annotations=ToolAnnotations(title=title, open_world_hint=False, **hints)
    )
    # Unknown arguments are refused (see TaskToolServer.call_tool), and the schema says so.
    tool.parameters["additionalProperties"] = False
    return tool


TOOLS = {
    tool.name: tool
    for tool in (
        _tool(add_task, "Add a task", read_only_hint=False, destructive_hint=False),
        _tool(list_tasks, "List tasks", read_only_hint=True),
        _tool(
            complete_task,
            "Complete a task",
            read_only_hint=False,
            destructive_hint=False,
            idempotent_hint=True,
        ),
        _tool(
            delete_task,
            "Delete a task",
            read_only_hint=False,
            destructive_hint=True,
            idempotent_hint=True,
        ),
        _tool(
            update_task,
            "Update a task",
            read_only_hint=False,
            destructive_hint=False,
            idempotent_hint=True,
        ),
    )
}


class TaskToolServer(MCPServer):
    """``MCPServer`` whose argument errors read like the services' errors."""

    async def call_tool(self, name: str, arguments: dict[str, Any], context=None):
        tool = TOOLS.get(name)
        if tool is not None:
            unknown = sorted(set(arguments) - set(tool.parameters["properties"]))
            if unknown:
                return tool_error(
                    f"Unknown argument {unknown[0]}; this tool takes "
                    + ", ".join(tool.parameters["properties"])
                    + ".",
                    code="unknown_argument",
                    field=unknown[0],
                )
        try:
            return await super().call_tool(name, arguments, context)
        except ToolError as exc:
            if isinstance(exc.__cause__, ValidationError) and not isinstance(
                exc, UnexpectedToolError
            ):
                return _validation_error(exc.__cause__)
            raise


def _version() -> str:
    try:
        return metadata.version("todo-backend")
    except metadata.PackageNotFoundError:
        return "0"


server = TaskToolServer(
    name="tasks",
    title="Tasks",
    instructions=INSTRUCTIONS,
    version=_version(),
    tools=list(TOOLS.values()),
)


def transport_security() -> TransportSecuritySettings:
    """DNS-rebinding protection with the hosts and origins from settings; ``*`` turns it off
    (for a deployment whose proxy already pins the host)."""
    hosts = list(settings.MCP_ALLOWED_HOSTS)
    origins = list(settings.MCP_ALLOWED_ORIGINS)
    return TransportSecuritySettings(
        enable_dns_rebinding_protection="*" not in hosts,
        allowed_hosts=hosts,
        allowed_origins=origins,
    )


def build_session_manager() -> StreamableHTTPSessionManager:
    """A fresh session manager (one per ASGI lifespan): stateless, JSON responses, so any
    server process can answer any request."""
    server.streamable_http_app(
        streamable_http_path=RESOURCE_PATH,
        stateless_http=True,
        json_response=True,
        transport_security=transport_security(),
        max_request_body_size=settings.DATA_UPLOAD_MAX_MEMORY_SIZE,
    )
    return server.session_manager
