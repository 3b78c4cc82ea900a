"""The topics events are published on. Kafka topic names, and the names consumers read."""

from __future__ import annotations

import re

TASK_EVENTS = "task-events"  # every task.* event: background services (recurrence, audit)
TASK_UPDATES = "task-updates"  # everything a user's clients need to stay in sync
REMINDERS = "reminders"  # reminder.* events: the notification service

# Topic names end up in SQL text (partial-index predicates), so they are held to this shape.
VALID_NAME = re.compile(r"^[a-z][a-z0-9.-]{0,62}$")


def check_name(name: str) -> str:
    if not VALID_NAME.match(name):
        raise ValueError(f"Invalid topic name {name!r}: lower case letters, digits, '.', '-'.")
    return name
