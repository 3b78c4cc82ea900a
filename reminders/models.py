"""A task's reminder and the notifications it leaves in its owner's inbox.

One ``Reminder`` row per task that ever had a reminder, kept in step with the task by
``reminders.services`` in the same transaction as the task change: its fire time, its state and
a ``generation`` that grows every time it is (re)scheduled. A Dapr job names the generation it
was scheduled for, so a stale trigger (the task moved, was completed or deleted since) is
recognised. A fired reminder gives one notification, however often its trigger is delivered
(the unique constraint on ``Notification``).

Rows are written only by ``reminders.services``.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from tasks.models import TITLE_MAX_LENGTH, USER_ID_MAX_LENGTH


class ReminderState(models.TextChoices):
    SCHEDULED = "scheduled"
    FIRED = "fired"
    CANCELLED = "cancelled"


class Reminder(models.Model):
    # The task's id; not a foreign key, because the row outlives a deleted task (its cancelled
    # state is what tells a late trigger that the task is gone).
    task_id = models.BigIntegerField(unique=True)
    user_id = models.CharField(max_length=USER_ID_MAX_LENGTH)
    fire_at = models.DateTimeField()
    due_at = models.DateTimeField(null=True, blank=True)
    title = models.CharField(max_length=TITLE_MAX_LENGTH)
    timezone = models.CharField(max_length=64, default="UTC")
    state = models.CharField(max_length=16, choices=ReminderState.choices)
    generation = models.PositiveIntegerField(default=1)
    # Dapr mode: False until the Jobs API holds this state (scheduled -> job, cancelled -> no job).
    job_synced = models.BooleanField(default=True)
    fired_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        indexes = [
            models.Index(
                fields=["fire_at"],
                name="reminder_scheduled_fire_idx",
                condition=Q(state="scheduled"),
            ),
            models.Index(
                fields=["updated_at"],
                name="reminder_job_unsynced_idx",
                condition=Q(job_synced=False),
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(state__in=ReminderState.values), name="reminder_state_valid"
            ),
            models.CheckConstraint(
                condition=~Q(state="fired") | Q(fired_at__isnull=False),
                name="reminder_fired_has_time",
            ),
            models.CheckConstraint(
                condition=Q(generation__gte=1), name="reminder_generation_positive"
            ),
        ]

    def __str__(self) -> str:
        return f"reminder for task {self.task_id} at {self.fire_at:%Y-%m-%d %H:%M} ({self.state})"


class Notification(models.Model):
    """One entry in a user's inbox: one per firing of a reminder."""

    KIND_REMINDER = "reminder"

    user_id = models.CharField(max_length=USER_ID_MAX_LENGTH)
    kind = models.CharField(max_length=32, default=KIND_REMINDER)
    reminder = models.ForeignKey(Reminder, on_delete=models.CASCADE, related_name="notifications")
    task_id = models.BigIntegerField()
    title = models.CharField(max_length=TITLE_MAX_LENGTH)
    due_at = models.DateTimeField(null=True, blank=True)
    remind_at = models.DateTimeField()
    late = models.BooleanField(default=False)
    created_at = models.DateTimeField()
    read_at = models.DateTimeField(null=True, blank=True)
    dismissed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["user_id", "-created_at", "-id"],
                name="notification_inbox_idx",
                condition=Q(dismissed_at__isnull=True),
            ),
            models.Index(
                fields=["user_id", "-created_at", "-id"],
                name="notification_unread_idx",
                condition=Q(dismissed_at__isnull=True, read_at__isnull=True),
            ),
        ]
        constraints = [
            # A repeated trigger of the same firing gives one notification.
            models.UniqueConstraint(
                fields=["reminder", "remind_at"], name="notification_one_per_trigger"
            ),
            models.CheckConstraint(condition=~Q(user_id=""), name="notification_user_not_empty"),
        ]

    def __str__(self) -> str:
        return f"{self.title} ({self.user_id})"
