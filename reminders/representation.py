"""JSON shapes of reminders and notifications: REST responses and event payloads share them."""

from __future__ import annotations

from reminders.models import Notification, Reminder
from tasks.representation import iso


def notification_to_dict(notification: Notification) -> dict:
    return {
        "id": notification.pk,
        "kind": notification.kind,
        "task_id": notification.task_id,
        "title": notification.title,
        "due_date": iso(notification.due_at),
        "remind_at": iso(notification.remind_at),
        "late": notification.late,
        "created_at": iso(notification.created_at),
        "read_at": iso(notification.read_at),
        "dismissed_at": iso(notification.dismissed_at),
    }


def job_data(reminder: Reminder) -> dict:
    """What a Dapr job carries and gets back at trigger time: enough to tell a stale trigger."""
    return {
        "reminder_id": reminder.pk,
        "task_id": reminder.task_id,
        "user_id": reminder.user_id,
        "generation": reminder.generation,
        "remind_at": iso(reminder.fire_at),
    }
