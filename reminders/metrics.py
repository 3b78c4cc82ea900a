"""Metrics of reminders."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

REMINDER_LATENESS = Histogram(
    "todo_reminder_lateness_seconds",
    "How late a reminder fired after its time.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
)
REMINDERS_FIRED = Counter("todo_reminders_fired_total", "Reminder triggers.", ["outcome"])
