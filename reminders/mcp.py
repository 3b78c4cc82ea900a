"""The notification inbox as MCP tools, added to the task server through
``tasks.mcp.registry`` (``ready()`` names this module; the server imports it when built).

Thin over ``reminders.selectors`` and ``reminders.services``, as ``reminders.api.views`` is.
"""

from __future__ import annotations

from typing import Annotated, Literal

from mcp.types import CallToolResult
from pydantic import Field
from typing_extensions import TypedDict

from reminders import selectors, services
from reminders.representation import notification_to_dict
from tasks.mcp.calls import serve
from tasks.mcp.results import result
from tasks.mcp.schemas import MAX_TASK_ID, Offset, UserId
from tasks.mcp.tools import LIST_BUDGET, WRITE_BUDGET, make_tool

NotificationId = Annotated[
    int,
    Field(
        strict=True,
        ge=1,
        le=MAX_TASK_ID,
        description="The notification's id (id from list_notifications).",
    ),
]
Unread = Annotated[
    bool | None,
    Field(strict=True, description="true: only unread; false: only read; left out: both."),
]
NotificationLimit = Annotated[
    int,
    Field(
        strict=True,
        ge=1,
        le=selectors.MAX_LIMIT,
        description=f"Page size, at most {selectors.MAX_LIMIT}.",
    ),
]


class NotificationData(TypedDict):
    """A notification, as ``reminders.representation.notification_to_dict`` writes it."""

    id: int
    kind: str
    task_id: int
    title: str
    due_date: str | None
    remind_at: str
    late: bool
    created_at: str
    read_at: str | None
    dismissed_at: str | None


class ListNotificationsResult(TypedDict):
    notifications: list[NotificationData]
    total_count: int
    limit: int
    offset: int


class NotificationResult(NotificationData):
    notification_id: int
    status: Literal["read", "dismissed"]


def _line(notification: dict) -> str:
    state = "read" if notification["read_at"] else "unread"
    late = ", late" if notification["late"] else ""
    return (
        f"- #{notification['id']} [{state}{late}] reminder for task #{notification['task_id']} "
        f"{notification['title']} at {notification['remind_at']}"
    )


async def list_notifications(
    *,
    user_id: UserId = None,
    unread: Unread = None,
    limit: NotificationLimit = selectors.DEFAULT_LIMIT,
    offset: Offset = 0,
) -> Annotated[CallToolResult, ListNotificationsResult]:
    """The user's notification inbox (reminders that fired), newest first; dismissed
    notifications are left out."""

    def work(owner: str) -> selectors.NotificationPage:
        return selectors.notification_list_for_user(
            user_id=owner, unread=unread, limit=limit, offset=offset
        )

    def present(page: selectors.NotificationPage) -> CallToolResult:
        notifications = [notification_to_dict(item) for item in page.notifications]
        data = {
            "notifications": notifications,
            "total_count": page.total,
            "limit": page.limit,
            "offset": page.offset,
        }
        lines = [f"{page.total} notification(s)."] + [_line(item) for item in notifications]
        return result(data, "\n".join(lines))

    return await serve(budget=LIST_BUDGET, work=work, present=present)


def _changed(notification, *, status: str) -> CallToolResult:
    data = notification_to_dict(notification)
    return result(
        {"notification_id": data["id"], "status": status, **data},
        f"Notification #{data['id']} is {status}.",
    )


async def mark_notification_read(
    *, user_id: UserId = None, notification_id: NotificationId
) -> Annotated[CallToolResult, NotificationResult]:
    """Mark a notification as read; marking a read one changes nothing."""

    def work(owner: str):
        return services.notification_mark_read(user_id=owner, notification_id=notification_id)

    return await serve(
        budget=WRITE_BUDGET,
        work=work,
        present=lambda notification: _changed(notification, status="read"),
        subject=("notification_id", notification_id),
    )


async def dismiss_notification(
    *, user_id: UserId = None, notification_id: NotificationId
) -> Annotated[CallToolResult, NotificationResult]:
    """Take a notification out of the inbox (it counts as read)."""

    def work(owner: str):
        return services.notification_dismiss(user_id=owner, notification_id=notification_id)

    return await serve(
        budget=WRITE_BUDGET,
        work=work,
        present=lambda notification: _changed(notification, status="dismissed"),
        subject=("notification_id", notification_id),
    )


TOOLS = [
    make_tool(list_notifications, "List notifications", read_only=True, idempotent=True),
    make_tool(mark_notification_read, "Mark a notification read", read_only=False, idempotent=True),
    make_tool(dismiss_notification, "Dismiss a notification", read_only=False, idempotent=True),
]
