"""Reminders follow their task: this receiver runs inside every task change's transaction."""

from __future__ import annotations

from reminders import services
from tasks.signals import TaskChange


def on_task_changed(sender, change: TaskChange, **kwargs) -> None:
    services.reminder_sync_for_task(change)
