"""The event types this app records.

``reminder.scheduled|triggered|cancelled`` carry the task (``task_id``, ``task_data``) with
``remind_at`` and ``previous_remind_at`` / ``fired_at`` / ``reason``; they go to ``reminders`` and
``task-updates``. The inbox events ``notification.created|read|dismissed`` go to ``task-updates``,
so that every open client of the user sees the inbox change. They are registered in
``RemindersConfig.ready``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt

from events import topics
from events.schemas import Envelope, UtcDatetime, register_event_type
from tasks.event_types import TaskPayload

REMINDER_SCHEDULED = "reminder.scheduled"
REMINDER_CANCELLED = "reminder.cancelled"
REMINDER_TRIGGERED = "reminder.triggered"
NOTIFICATION_CREATED = "notification.created"
NOTIFICATION_READ = "notification.read"
NOTIFICATION_DISMISSED = "notification.dismissed"

# Reminder events also go to task-updates: a user's clients then see every sequence number
# and can tell "missed" from "not for me".
REMINDER_TOPICS = (topics.REMINDERS, topics.TASK_UPDATES)
NOTIFICATION_TOPICS = (topics.TASK_UPDATES,)


class ReminderScheduledPayload(TaskPayload):
    remind_at: UtcDatetime
    previous_remind_at: UtcDatetime | None = Field(
        default=None, description="Set when an existing reminder was moved."
    )


class ReminderTriggeredPayload(TaskPayload):
    remind_at: UtcDatetime = Field(description="When the reminder was due.")
    fired_at: UtcDatetime = Field(description="When it fired (later than remind_at if late).")


class ReminderCancelledPayload(TaskPayload):
    remind_at: UtcDatetime = Field(description="When the cancelled reminder was due.")
    reason: Literal["completed", "deleted", "cleared", "passed"] = Field(
        description="Task completed or deleted, reminder removed, or moved to a time already "
        "past on a task already due."
    )


class ReminderScheduled(Envelope):
    event_type: Literal["reminder.scheduled"]
    payload: ReminderScheduledPayload


class ReminderTriggered(Envelope):
    event_type: Literal["reminder.triggered"]
    payload: ReminderTriggeredPayload


class ReminderCancelled(Envelope):
    event_type: Literal["reminder.cancelled"]
    payload: ReminderCancelledPayload


class NotificationData(BaseModel):
    """``reminders.representation.notification_to_dict``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: PositiveInt
    kind: Literal["reminder"]
    task_id: PositiveInt
    title: str = Field(min_length=1, max_length=200)
    due_date: UtcDatetime | None
    remind_at: UtcDatetime
    late: bool
    created_at: UtcDatetime
    read_at: UtcDatetime | None
    dismissed_at: UtcDatetime | None


class NotificationPayload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    notification_id: PositiveInt
    notification: NotificationData


class NotificationCreated(Envelope):
    event_type: Literal["notification.created"]
    payload: NotificationPayload


class NotificationRead(Envelope):
    event_type: Literal["notification.read"]
    payload: NotificationPayload


class NotificationDismissed(Envelope):
    event_type: Literal["notification.dismissed"]
    payload: NotificationPayload


def register() -> None:
    register_event_type(
        ReminderScheduled,
        topics=REMINDER_TOPICS,
        description="A reminder was scheduled or moved for a task.",
    )
    register_event_type(
        ReminderTriggered,
        topics=REMINDER_TOPICS,
        description="A task's reminder came due and fired.",
    )
    register_event_type(
        ReminderCancelled,
        topics=REMINDER_TOPICS,
        description="A task's reminder was cancelled (task completed or deleted, reminder removed).",
    )
    register_event_type(
        NotificationCreated,
        topics=NOTIFICATION_TOPICS,
        description="A fired reminder put a notification in the user's inbox.",
    )
    register_event_type(
        NotificationRead, topics=NOTIFICATION_TOPICS, description="A notification was read."
    )
    register_event_type(
        NotificationDismissed,
        topics=NOTIFICATION_TOPICS,
        description="A notification was dismissed from the inbox.",
    )
