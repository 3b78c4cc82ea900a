"""``undo_last_change``: REST's ``POST /api/tasks/<id>/undo/`` as a tool, same service."""

from __future__ import annotations

from typing import Annotated

from mcp.types import CallToolResult

from events.actors import current_actor
from tasks import services
from tasks.api.undo import undo_to_dict
from tasks.mcp.calls import serve
from tasks.mcp.results import result, summary
from tasks.mcp.schemas import TaskId, UndoResult, UserId
from tasks.mcp.tools import WRITE_BUDGET, make_tool

_DONE = {
    "reverted": "Set back",
    "restored": "Restored from the trash",
    "trashed": "Moved to the trash",
}


async def undo_last_change(
    *, user_id: UserId = None, task_id: TaskId
) -> Annotated[CallToolResult, UndoResult]:
    """Undo your latest change to a task, made with this same token in the last 10 minutes:
    fields go back to what they were, a deletion is restored, a creation goes to the trash, a
    completion is reopened. It is a new change (task_history shows both). If anyone changed the
    task after you, it is refused with code conflict; calling it again redoes the change."""

    def work(owner: str) -> dict:
        token_id = current_actor().token_id
        undone = services.task_undo(user_id=owner, task_id=task_id, token_id=token_id)
        return undo_to_dict(undone)

    def present(data: dict) -> CallToolResult:
        task = data["task"]
        undone = data["undone"]["event_type"]
        text = f"{_DONE[data['action']]} (undid {undone}): {summary(task)}"
        return result({"task_id": task["id"], **data}, text)

    return await serve(budget=WRITE_BUDGET, work=work, present=present, task_id=task_id)


TOOLS = [make_tool(undo_last_change, "Undo my last change", read_only=False, destructive=True)]
