"""Resources: one task (``task://{task_id}``) and three lists an agent reads at the start of a
job (``tasks://today``, ``tasks://overdue``, ``tasks://upcoming``), as JSON, for the
signed-in user only, through the same selectors as ``get_task`` and ``list_tasks``.

A listen stream (``tasks.mcp.live``) is told when any of them changes. A resource that is not
the user's is "not found", as REST answers; a refusal is a JSON-RPC error (resources have no
error result) whose ``data`` has the stable ``code``.
"""

from __future__ import annotations

import json
from datetime import timedelta

from django.utils import timezone
from mcp.server.mcpserver import MCPServer
from mcp.shared.exceptions import MCPError

from tasks import selectors
from tasks.errors import TaskError
from tasks.mcp.auth import current_user
from tasks.mcp.calls import in_database_thread
from tasks.mcp.ratelimit import JSONRPC_RATE_LIMITED, RateLimited
from tasks.mcp.results import with_task_id
from tasks.mcp.tools import LIST_BUDGET, READ_BUDGET
from tasks.models import MAX_LIMIT
from tasks.representation import task_to_dict

# The MCP spec's "resource not found" (2025-06-18 onwards).
RESOURCE_NOT_FOUND = -32002
JSONRPC_FORBIDDEN = -32001
UPCOMING_DAYS = 7
JSON = "application/json"


def _dumps(data: dict) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


async def _read(budget: str, work, uri: str):
    if not current_user().can_read:
        raise MCPError(
            JSONRPC_FORBIDDEN,
            "This token's scope does not allow reading; it needs tasks:read.",
            data={"code": "insufficient_scope", "uri": uri},
        )
    try:
        return await in_database_thread(budget, work)
    except RateLimited as exc:
        raise MCPError(
            JSONRPC_RATE_LIMITED,
            str(exc),
            data={"code": "rate_limited", "retry_after": exc.retry_after, "uri": uri},
        ) from None
    except TaskError as exc:
        raise MCPError(
            RESOURCE_NOT_FOUND if exc.code == "not_found" else JSONRPC_FORBIDDEN,
            f"{uri}: {exc.message}",
            data={"code": exc.code, "uri": uri},
        ) from None


async def read_task(task_id: str) -> str:
    """One task with every field, as get_task gives it."""
    uri = f"task://{task_id}"
    if not task_id.isascii() or not task_id.isdigit() or len(task_id) > 19:
        raise MCPError(
            RESOURCE_NOT_FOUND,
            f"{uri}: Task not found (task ids are positive integers).",
            data={"code": "not_found", "uri": uri},
        )

    def work(owner: str) -> dict:
        task = selectors.task_get_for_user(user_id=owner, task_id=int(task_id))
        return task_to_dict(task)

    task = await _read(READ_BUDGET, work, uri)
    return _dumps(with_task_id(task))


def _list(name: str, description: str, filters):
    """A list resource: the first ``MAX_LIMIT`` matching tasks, soonest due first."""
    uri = f"tasks://{name}"

    async def read() -> str:
        def work(owner: str) -> selectors.TaskPage:
            return selectors.task_list_for_user(
                user_id=owner, filters=filters(), limit=MAX_LIMIT, offset=0
            )

        page = await _read(LIST_BUDGET, work, uri)
        return _dumps(
            {
                "tasks": [with_task_id(task) for task in page.items],
                "total_count": page.total,
                "uri": uri,
            }
        )

    read.__name__ = f"read_{name}"
    read.__doc__ = description
    return uri, read


def _today() -> selectors.TaskFilters:
    return selectors.TaskFilters(status="pending", due="today", ordering=("due_date",))


def _overdue() -> selectors.TaskFilters:
    return selectors.TaskFilters(due="overdue", ordering=("due_date",))


def _upcoming() -> selectors.TaskFilters:
    now = timezone.now()
    return selectors.TaskFilters(
        status="pending",
        due_after=now,
        due_before=now + timedelta(days=UPCOMING_DAYS),
        ordering=("due_date",),
    )


LISTS = [
    _list("today", "Pending tasks due today (UTC), soonest first.", _today),
    _list("overdue", "Tasks past their due date and not completed, oldest first.", _overdue),
    _list(
        "upcoming",
        f"Pending tasks due in the next {UPCOMING_DAYS} days, soonest first.",
        _upcoming,
    ),
]


def register(server: MCPServer) -> None:
    server.resource(
        "task://{task_id}",
        name="task",
        title="A task",
        description="One of your tasks by its id, as JSON (the fields get_task returns).",
        mime_type=JSON,
    )(read_task)
    for uri, read in LISTS:
        name = uri.removeprefix("tasks://")
        server.resource(
            uri, name=name, title=f"Tasks: {name}", description=read.__doc__, mime_type=JSON
        )(read)
