"""``changes_since``: the change feed of ``GET /api/changes/`` as a tool, same selector, same
items; past the retention it is the error ``resync_required`` (REST's 410)."""

from __future__ import annotations

from typing import Annotated

from mcp.types import CallToolResult

from events.selectors import ChangePage, changes_for_user_since, latest_sequence_for_user
from tasks import selectors
from tasks.api.changes import DEFAULT_CHANGES, SUBJECT_KEY, change_item
from tasks.mcp.calls import serve
from tasks.mcp.results import result, tool_error
from tasks.mcp.schemas import ChangesLimit, ChangesSinceResult, Since, UserId
from tasks.mcp.tools import LIST_BUDGET, make_tool


async def changes_since(
    *, user_id: UserId = None, since: Since, limit: ChangesLimit = DEFAULT_CHANGES
) -> Annotated[CallToolResult, ChangesSinceResult]:
    """What changed in the user's tasks after sequence `since`, oldest first: each event with
    the task as it is now (or deleted: true). Call again with next_since while has_more. The
    error resync_required means those events are no longer kept: reload with list_tasks and
    continue from the latest_sequence the error gives."""

    def work(owner: str) -> tuple[ChangePage, dict[int, dict], int]:
        # The newest sequence first: a reload after a resync misses nothing from it on.
        latest = latest_sequence_for_user(user_id=owner)
        page = changes_for_user_since(
            user_id=owner, after_sequence=since, limit=limit, subject_key=SUBJECT_KEY
        )
        tasks = selectors.task_representations_in_bulk(
            user_id=owner,
            task_ids={c.subject_id for c in page.changes if c.subject_id is not None},
        )
        return page, tasks, latest

    def present(value: tuple[ChangePage, dict[int, dict], int]) -> CallToolResult:
        page, tasks, latest = value
        if page.gone:
            return tool_error(
                f"Changes after sequence {since} are no longer available; reload the tasks "
                f"(list_tasks) and continue from since={latest}.",
                code="resync_required",
                field="since",
                latest_sequence=latest,
            )
        changes = [change_item(change, tasks) for change in page.changes]
        data = {
            "changes": changes,
            "next_since": page.changes[-1].sequence if page.changes else since,
            "has_more": page.has_more,
        }
        lines = [f"{len(changes)} change(s) after sequence {since}."]
        lines += [
            f"- #{item['sequence']} {item['event_type']}"
            + (f" task #{item['task_id']}" if item["task_id"] else "")
            + (" (gone)" if item.get("deleted") else "")
            for item in changes
        ]
        if page.has_more:
            lines.append(f"More: call again with since={data['next_since']}")
        return result(data, "\n".join(lines))

    return await serve(budget=LIST_BUDGET, work=work, present=present)


TOOLS = [make_tool(changes_since, "Changes since a sequence", read_only=True, idempotent=True)]
