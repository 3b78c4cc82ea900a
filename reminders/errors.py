from __future__ import annotations

from tasks.errors import TaskError


class NotificationNotFound(TaskError):
    """No such notification for this user (another user's notification included)."""

    status = 404
    code = "not_found"

    def __init__(self, notification_id: object = None):
        super().__init__("Notification not found.")
        self.notification_id = notification_id
