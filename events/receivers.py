"""``events`` listens to the task services: each announced change becomes an outbox row in the
service's own transaction. If recording fails, the exception rolls the change back."""

from __future__ import annotations

from events.services import task_change_record


def record_task_change(sender, change, **kwargs) -> None:
    task_change_record(change)
