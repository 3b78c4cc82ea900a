"""Bulk tools: ``add_tasks``, ``update_tasks`` and ``complete_tasks``, up to 50 items each.

Each item runs the service its single tool runs, in a savepoint of one transaction, and gets its
own result: an item that fails leaves the others done, as REST's non-atomic bulk does. With
``dry_run`` the whole batch runs the same way and is then rolled back, so every check the
services make (the database's included) is made, and nothing is written, announced or
scheduled. Every item counts against the write budget.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Annotated, Any

from django.db import transaction
from mcp.types import CallToolResult

from tasks import services
from tasks.errors import TaskError, TaskNotFound
from tasks.mcp.calls import serve
from tasks.mcp.results import result
from tasks.mcp.schemas import (
    BulkResult,
    DryRun,
    NewTaskItems,
    TaskChangeItems,
    TaskIds,
    UserId,
)
from tasks.mcp.tools import WRITE_BUDGET, make_tool

Outcome = dict[str, Any]


def _item_error(exc: TaskError, task_id: int | None) -> dict:
    message = exc.message
    if isinstance(exc, TaskNotFound) and task_id is not None:
        message = f"Task {task_id} not found."
    return {"code": exc.code, "message": message, "field": exc.field}


def _run_batch(items: list, apply: Callable[[Any], Outcome], *, dry_run: bool) -> list[dict]:
    """Each item's outcome; a dry run rolls the whole batch back at the end."""
    results = []
    with transaction.atomic():
        for index, item in enumerate(items):
            task_id = item.get("task_id") if isinstance(item, dict) else item
            try:
                with transaction.atomic():
                    outcome = apply(item)
            except TaskError as exc:
                outcome = {
                    "ok": False,
                    "task_id": task_id,
                    "status": "failed",
                    "error": _item_error(exc, task_id),
                }
            results.append({"index": index, **outcome})
        if dry_run:
            transaction.set_rollback(True)
    return results


def _present(tool: str, results: list[dict], *, dry_run: bool) -> CallToolResult:
    succeeded = sum(1 for item in results if item["ok"])
    data = {
        "dry_run": dry_run,
        "succeeded": succeeded,
        "failed": len(results) - succeeded,
        "results": results,
    }
    head = f"{tool}: {succeeded} of {len(results)} item(s) " + (
        "would succeed (dry run, nothing changed)." if dry_run else "done."
    )
    lines = [head]
    for item in results:
        subject = f"task #{item['task_id']}" if item["task_id"] else "new task"
        if item["ok"]:
            lines.append(f"- [{item['index']}] {item['status']}: {subject} {item.get('title', '')}")
        else:
            error = item["error"]
            where = f"{error['field']}: " if error["field"] else ""
            lines.append(
                f"- [{item['index']}] failed: {subject}: {where}{error['message']} "
                f"(code: {error['code']})"
            )
    return result(data, "\n".join(lines))


async def _serve_batch(
    tool: str, items: list, apply: Callable[[str, Any], Outcome], *, dry_run: bool
) -> CallToolResult:
    """Run ``apply(owner, item)`` for each item, each item spending one write."""
    return await serve(
        budget=WRITE_BUDGET,
        work=lambda owner: _run_batch(items, partial(apply, owner), dry_run=dry_run),
        present=lambda results: _present(tool, results, dry_run=dry_run),
        cost=len(items),
    )


async def add_tasks(
    *, user_id: UserId = None, tasks: NewTaskItems, dry_run: DryRun = False
) -> Annotated[CallToolResult, BulkResult]:
    """Create up to 50 tasks at once; each item takes add_task's arguments. Each item
    succeeds or fails on its own (results[i] says which and why); dry_run=true checks them all
    and changes nothing."""

    def create(owner: str, item: dict) -> Outcome:
        fields = {**item}
        task = services.task_create(
            user_id=owner,
            title=fields.pop("title"),
            priority=fields.pop("priority", None) or "medium",
            timezone_name=fields.pop("timezone", None),
            **fields,
        )
        return {
            "ok": True,
            "task_id": None if dry_run else task.pk,
            "status": "created",
            "title": task.title,
        }

    return await _serve_batch("add_tasks", tasks, create, dry_run=dry_run)


async def update_tasks(
    *, user_id: UserId = None, changes: TaskChangeItems, dry_run: DryRun = False
) -> Annotated[CallToolResult, BulkResult]:
    """Change up to 50 tasks at once; each item is a task_id and the fields to change, as in
    update_task. Each item succeeds or fails on its own; dry_run=true changes nothing."""

    def update(owner: str, item: dict) -> Outcome:
        task_id = item["task_id"]
        fields = {
            name: value for name, value in item.items() if name != "task_id" and value is not None
        }
        if not fields:
            raise TaskError(
                "Nothing to update: give at least one field besides task_id.",
                code="nothing_to_update",
            )
        task, changed = services.task_update(user_id=owner, task_id=task_id, changes=fields)
        return {
            "ok": True,
            "task_id": task.pk,
            "status": "updated" if changed else "unchanged",
            "title": task.title,
            "updated_fields": list(changed),
        }

    return await _serve_batch("update_tasks", changes, update, dry_run=dry_run)


async def complete_tasks(
    *, user_id: UserId = None, task_ids: TaskIds, dry_run: DryRun = False
) -> Annotated[CallToolResult, BulkResult]:
    """Mark up to 50 tasks done at once (a recurring one makes its next occurrence). A task
    that is already done is reported unchanged; dry_run=true changes nothing."""

    def complete(owner: str, task_id: int) -> Outcome:
        task, changed = services.task_update(
            user_id=owner, task_id=task_id, changes={"completed": True}
        )
        return {
            "ok": True,
            "task_id": task.pk,
            "status": "completed" if changed else "unchanged",
            "title": task.title,
        }

    return await _serve_batch("complete_tasks", task_ids, complete, dry_run=dry_run)


TOOLS = [
    make_tool(add_tasks, "Add tasks in bulk", read_only=False),
    make_tool(update_tasks, "Update tasks in bulk", read_only=False, idempotent=True),
    make_tool(complete_tasks, "Complete tasks in bulk", read_only=False, idempotent=True),
]
