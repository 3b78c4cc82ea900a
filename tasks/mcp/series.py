"""Series and trash tools: skip or move one occurrence, preview the next ones, restore a deleted
task and list the trash. Thin over the services and selectors REST's ``tasks/api/series.py`` and
``tasks/api/trash.py`` call."""

from __future__ import annotations

from typing import Annotated

from mcp.types import CallToolResult

from tasks import selectors, services
from tasks.mcp.calls import serve
from tasks.mcp.results import result, summary, with_task_id
from tasks.mcp.schemas import (
    ApplyTo,
    Limit,
    ListTrashResult,
    NewDueDate,
    OccurrenceCount,
    Offset,
    PreviewOccurrencesResult,
    RescheduleOccurrenceResult,
    RestoreTaskResult,
    SkipOccurrenceResult,
    TaskId,
    UserId,
)
from tasks.mcp.tools import LIST_BUDGET, READ_BUDGET, WRITE_BUDGET, make_tool
from tasks.models import DEFAULT_LIMIT, DEFAULT_OCCURRENCES
from tasks.representation import task_to_dict


async def skip_occurrence(
    *, user_id: UserId = None, task_id: TaskId
) -> Annotated[CallToolResult, SkipOccurrenceResult]:
    """Skip this occurrence of a recurring task: it is closed without being done and the
    series' next occurrence comes as after a completion. Skipping it again changes nothing."""

    def work(owner: str) -> dict:
        return task_to_dict(services.task_skip(user_id=owner, task_id=task_id))

    def present(task: dict) -> CallToolResult:
        return result(with_task_id(task, status="skipped"), f"Skipped occurrence {summary(task)}")

    return await serve(budget=WRITE_BUDGET, work=work, present=present, task_id=task_id)


async def reschedule_occurrence(
    *,
    user_id: UserId = None,
    task_id: TaskId,
    due_date: NewDueDate,
    apply_to: ApplyTo = None,
) -> Annotated[CallToolResult, RescheduleOccurrenceResult]:
    """Move the due time of one occurrence of a recurring task, or with apply_to=series the
    series' calendar from this occurrence on. Works on a task that does not repeat too."""
    scope = apply_to or "instance"

    def work(owner: str) -> tuple[dict, tuple[str, ...]]:
        task, changed = services.task_update(
            user_id=owner, task_id=task_id, changes={"due_date": due_date}, apply_to=scope
        )
        return task_to_dict(task), changed

    def present(value: tuple[dict, tuple[str, ...]]) -> CallToolResult:
        task, changed = value
        data = with_task_id(
            task, status="rescheduled", apply_to=scope, updated_fields=list(changed)
        )
        moved = "the series from" if scope == "series" else "occurrence"
        text = f"Moved {moved} {summary(task)}" if changed else f"Already there: {summary(task)}"
        return result(data, text)

    return await serve(budget=WRITE_BUDGET, work=work, present=present, task_id=task_id)


async def preview_occurrences(
    *, user_id: UserId = None, task_id: TaskId, count: OccurrenceCount = DEFAULT_OCCURRENCES
) -> Annotated[CallToolResult, PreviewOccurrencesResult]:
    """The next due times of a recurring task's series from this task on: open instances
    (task_id set), then those still to be created (task_id null), up to the series' end."""

    def work(owner: str) -> dict:
        found = selectors.task_occurrences(user_id=owner, task_id=task_id, count=count)
        task = found.task
        return {
            "task_id": task.pk,
            "timezone": task.timezone,
            "repeat_from": task.repeat_from,
            "occurrences": [occurrence.to_dict() for occurrence in found.items],
        }

    def present(data: dict) -> CallToolResult:
        lines = [f"Next {len(data['occurrences'])} occurrence(s) of task #{task_id}:"]
        lines += [
            f"- {item['due']}" + (f" (task #{item['task_id']})" if item["task_id"] else "")
            for item in data["occurrences"]
        ]
        return result(data, "\n".join(lines))

    return await serve(budget=READ_BUDGET, work=work, present=present, task_id=task_id)


async def restore_task(
    *, user_id: UserId = None, task_id: TaskId
) -> Annotated[CallToolResult, RestoreTaskResult]:
    """Take a deleted task out of the trash as it was, with its history (list_trash shows
    what is there); its reminder is scheduled again when still to come."""

    def work(owner: str) -> dict:
        return task_to_dict(services.task_restore(user_id=owner, task_id=task_id))

    def present(task: dict) -> CallToolResult:
        return result(with_task_id(task, status="restored"), f"Restored task {summary(task)}")

    return await serve(budget=WRITE_BUDGET, work=work, present=present, task_id=task_id)


async def list_trash(
    *, user_id: UserId = None, limit: Limit = DEFAULT_LIMIT, offset: Offset = 0
) -> Annotated[CallToolResult, ListTrashResult]:
    """The user's deleted tasks, most recently deleted first, each with deleted_at and
    purge_after (when it goes for good); restore_task brings one back."""

    def work(owner: str) -> selectors.TaskPage:
        return selectors.task_trash_for_user(user_id=owner, limit=limit, offset=offset)

    def present(page: selectors.TaskPage) -> CallToolResult:
        data = {
            "tasks": [with_task_id(task) for task in page.items],
            "total_count": page.total,
            "limit": page.limit,
            "offset": page.offset,
        }
        lines = [f"{page.total} task(s) in the trash."]
        lines += [
            f"- {summary(task)} · deleted {task['deleted_at']} · purged after {task['purge_after']}"
            for task in page.items
        ]
        return result(data, "\n".join(lines))

    return await serve(budget=LIST_BUDGET, work=work, present=present)


TOOLS = [
    make_tool(skip_occurrence, "Skip an occurrence", read_only=False, idempotent=True),
    make_tool(reschedule_occurrence, "Reschedule an occurrence", read_only=False, idempotent=True),
    make_tool(preview_occurrences, "Preview occurrences", read_only=True, idempotent=True),
    make_tool(restore_task, "Restore a task", read_only=False, idempotent=True),
    make_tool(list_trash, "List the trash", read_only=True, idempotent=True),
]
