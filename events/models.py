"""Tables of the event pipeline.

- ``UserEventSequence``: the last sequence number of each user's events (gapless, transactional).
- ``OutboxEvent``: every recorded event, written in the transaction of the change it describes.
  The relay publishes it and sets ``sent_at``; in the embedded mode publishing also gives it its
  ``position`` in the log that consumers read.
- ``OutboxPending``: the ids of outbox rows not yet published, the relay's queue.
- ``EventLogHead``: one row holding the last log position; relays lock it while they publish to the
  embedded log, which makes positions follow commit order.
- ``ConsumerCursor``: how far each embedded consumer has read the log.
- ``ProcessedEvent``: ``(consumer, event_id)`` written with the consumer's effect (idempotency).
- ``DeadLetter``: messages a consumer could not handle, with the error, until replayed.
- ``TaskHistory``: the audit consumer's record of each task's events.
"""

from __future__ import annotations

from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q
from django.db.models.functions import Now

from events import topics
from tasks.models import USER_ID_MAX_LENGTH

NAME_MAX_LENGTH = 64


class UserEventSequence(models.Model):
    user_id = models.CharField(max_length=USER_ID_MAX_LENGTH, primary_key=True)
    last_sequence = models.BigIntegerField()

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(last_sequence__gte=1), name="event_seq_positive")
        ]

    def __str__(self) -> str:
        return f"{self.user_id}: {self.last_sequence}"


class OutboxEvent(models.Model):
    id = models.BigAutoField(primary_key=True)
    event_id = models.UUIDField(unique=True)
    event_type = models.CharField(max_length=NAME_MAX_LENGTH)
    user_id = models.CharField(max_length=USER_ID_MAX_LENGTH)
    sequence = models.BigIntegerField()
    topics = ArrayField(models.CharField(max_length=NAME_MAX_LENGTH))
    envelope = models.JSONField()
    created_at = models.DateTimeField(db_default=Now())
    sent_at = models.DateTimeField(null=True, blank=True)
    position = models.BigIntegerField(null=True, blank=True)
    publish_attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True, default="")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user_id", "sequence"], name="outbox_user_sequence"),
            models.UniqueConstraint(
                fields=["position"],
                name="outbox_position_unique",
                condition=Q(position__isnull=False),
            ),
            models.CheckConstraint(condition=Q(sequence__gte=1), name="outbox_sequence_positive"),
            models.CheckConstraint(
                condition=Q(position__isnull=True) | Q(sent_at__isnull=False),
                name="outbox_position_only_when_sent",
            ),
        ]
        indexes = [
            # a sparse topic gets its own index, so its consumers don't scan every task event
            models.Index(
                fields=["position"],
                name="outbox_reminders_pos_idx",
                condition=Q(position__isnull=False, topics__contains=[topics.REMINDERS]),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} {self.event_id} ({self.user_id} #{self.sequence})"


class OutboxPending(models.Model):
    """An outbox row not yet published, by id: written with the row, deleted when the relay
    marks it sent (a refused row stays).

    The relay's claim reads this small table in id order. An index of unsent rows on the outbox
    itself kept, in front of the unsent entries, one entry for every row sent since the big
    table was last vacuumed (a vacuum comes after a fifth of it has changed): every claim walked
    them all, 8 ms and more per pass once a few million rows had gone through. This table is
    vacuumed after every thousand deletions (migration ``0002``), which costs little at its size.
    """

    id = models.BigIntegerField(primary_key=True, help_text="The OutboxEvent id.")

    class Meta:
        verbose_name = "unsent outbox row"

    def __str__(self) -> str:
        return f"unsent outbox row {self.id}"


class EventLogHead(models.Model):
    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    last_position = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(id=1), name="event_log_head_single")]

    def __str__(self) -> str:
        return f"log head at {self.last_position}"


class ConsumerCursor(models.Model):
    consumer = models.CharField(max_length=NAME_MAX_LENGTH, primary_key=True)
    position = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(db_default=Now())

    def __str__(self) -> str:
        return f"{self.consumer} at {self.position}"


class ProcessedEvent(models.Model):
    pk = models.CompositePrimaryKey("consumer", "event_id")
    consumer = models.CharField(max_length=NAME_MAX_LENGTH)
    event_id = models.UUIDField()
    processed_at = models.DateTimeField(db_default=Now())

    class Meta:
        indexes = [models.Index(fields=["processed_at"], name="processed_event_age_idx")]

    def __str__(self) -> str:
        return f"{self.consumer}: {self.event_id}"


class DeadLetter(models.Model):
    consumer = models.CharField(max_length=NAME_MAX_LENGTH)
    topic = models.CharField(max_length=NAME_MAX_LENGTH, blank=True, default="")
    event_id = models.UUIDField(null=True, blank=True)
    event_type = models.CharField(max_length=NAME_MAX_LENGTH, blank=True, default="")
    user_id = models.CharField(max_length=USER_ID_MAX_LENGTH, blank=True, default="")
    envelope = models.JSONField(null=True, blank=True, help_text="The message, if it was JSON.")
    raw = models.TextField(blank=True, default="", help_text="The message, if it was not JSON.")
    error = models.TextField()
    attempts = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(db_default=Now())
    last_failed_at = models.DateTimeField(db_default=Now())
    replayed_at = models.DateTimeField(null=True, blank=True)
    replay_count = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["consumer", "event_id"],
                name="dead_letter_one_per_event",
                condition=Q(event_id__isnull=False),
            )
        ]
        indexes = [
            models.Index(
                fields=["created_at"],
                name="dead_letter_pending_idx",
                condition=Q(replayed_at__isnull=True),
            )
        ]

    def __str__(self) -> str:
        return f"{self.consumer}: {self.event_type or 'invalid message'} {self.event_id or ''}"


class TaskHistory(models.Model):
    user_id = models.CharField(max_length=USER_ID_MAX_LENGTH)
    task_id = models.BigIntegerField()
    event_id = models.UUIDField(unique=True)
    event_type = models.CharField(max_length=NAME_MAX_LENGTH)
    sequence = models.BigIntegerField()
    occurred_at = models.DateTimeField()
    changed_fields = ArrayField(models.CharField(max_length=NAME_MAX_LENGTH), default=list)
    previous = models.JSONField(default=dict)
    task_data = models.JSONField()
    recorded_at = models.DateTimeField(db_default=Now())

    class Meta:
        verbose_name_plural = "task history"
        indexes = [
            models.Index(fields=["user_id", "task_id", "sequence"], name="task_history_task_idx")
        ]

    def __str__(self) -> str:
        return f"task {self.task_id}: {self.event_type} #{self.sequence}"
